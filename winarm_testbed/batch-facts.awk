# batch-facts.awk: what the testbed runs of a batch file (see batch_facts in init.sh); run after cmdline.awk.
# Input: the batch file (CRLF or LF); output, one fact a line, in file order:
#   report WAIT |SCRIPT|NAME|BODY|ATTEMPTS|   a run of the report script (see report_fact);
#   map L: HOST NAME                         `call :map L: "\\HOST\NAME"` (the share script's mapping);
#   attempts N                               `set "ATTEMPTS=N"` (how often each mapping is tried);
#   login |FILE|                             `... if exist "%%D:\MARKER" ... set "LOGIN=%%D:\FILE"`: the share
#                                            login's file on the answer medium (FILE with "/");
#   cmdkey HOST                              `... cmdkey[.exe] /add:HOST /user:%%U /pass:%%V` (from that file);
#   diskpart |SCRIPT|                        `diskpart[.exe] /s "SCRIPT"` (SCRIPT as written: %~dp0 is the
#                                            batch file's own folder).
{
    sub(/\r$/, "")
    sub(/^[ \t@]+/, "")
    line = $0
    low = tolower(line)
    fact = report_fact(line)
    if (fact != "") { print fact; next }
    if (match(line, /^call[ \t]+:map[ \t]+[A-Za-z]:[ \t]+"?\\\\[A-Za-z0-9.-]+\\[A-Za-z0-9][A-Za-z0-9_.-]*"?[ \t]*$/)) {
        n = split(line, W, /[ \t]+/)
        unc = W[4]
        gsub(/"/, "", unc)
        unc = substr(unc, 3)
        k = index(unc, "\\")
        print "map " toupper(W[3]) " " tolower(substr(unc, 1, k - 1)) " " substr(unc, k + 1)
        next
    }
    if (match(low, /^set[ \t]+"attempts=[0-9]+"[ \t]*$/)) {
        v = line
        sub(/^[^=]*=/, "", v)
        sub(/".*$/, "", v)
        print "attempts " v
        next
    }
    if (low ~ /if exist "%%[a-z]:\\winarm\.marker"/ && match(line, /set "LOGIN=%%[A-Za-z]:\\[^"]+"/)) {
        f = substr(line, RSTART + 16, RLENGTH - 17)
        gsub(/\\/, "/", f)
        print "login |" f "|"
        next
    }
    if (match(low, /(^|[ \t(])cmdkey(\.exe)?[ \t]+\/add:[a-z0-9.-]+[ \t]+\/user:%%[a-z][ \t]+\/pass:%%[a-z]/)) {
        h = substr(low, RSTART, RLENGTH)
        sub(/^.*\/add:/, "", h)
        sub(/[ \t].*$/, "", h)
        print "cmdkey " h
        next
    }
    if (match(low, /^diskpart(\.exe)?[ \t]+\/s[ \t]+/)) {
        s = substr(line, RLENGTH + 1)
        if (substr(s, 1, 1) == "\"") { s = substr(s, 2); sub(/".*$/, "", s) } else sub(/[ \t].*$/, "", s)
        if (s != "" && index(s, "|") == 0) print "diskpart |" s "|"
    }
}
