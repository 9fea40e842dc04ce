# run-key-facts.awk: the Run-key commands the testbed executes (see run_key_facts in init.sh); run after
# cmdline.awk. Input: "NAME TYPE COMMAND" lines; output: "rk NAME TYPE FACT" (FACT an echo_fact, a report_fact
# or a batch_fact).
{
    name = $1
    type = $2
    rest = substr($0, index($0, name) + length(name) + 1)
    rest = substr(rest, index(rest, type) + length(type) + 1)
    fact = echo_fact(rest)
    if (fact == "") fact = report_fact(rest)
    if (fact == "") fact = batch_fact(rest)
    if (fact != "") print "rk " name " " type " " fact
}
