# batch-facts.awk: the report script's runs in a batch file (see batch_facts in init.sh); run after cmdline.awk.
# Input: the batch file (CRLF or LF); output: one report_fact a line that runs the report script.
{
    sub(/\r$/, "")
    sub(/^[ \t@]+/, "")
    fact = report_fact($0)
    if (fact != "") print fact
}
