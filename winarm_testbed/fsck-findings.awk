# fsck-findings.awk: what fsck.fat printed, on one line (see fsck_findings in init.sh).
/^fsck\.fat [0-9]/ || /^Leaving filesystem unchanged/ || /^\*\*\* Filesystem was changed/ { next }
/^Writing changes/ || /: [0-9]+ files, [0-9]+\/[0-9]+ clusters$/ || /^ *Automatically removing dirty bit/ { next }
{ sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
$0 == "" { next }
/^Dirty bit is set\./ { $0 = "dirty bit set (not properly unmounted)" }
{ out = out (out == "" ? "" : "; ") $0 }
END { print substr(out, 1, 300) }
