# run-key-facts.awk: the Run-key commands the testbed executes (see run_key_facts in init.sh); run after
# cmdline.awk.
{
    name = $1
    fact = echo_fact(substr($0, index($0, name) + length(name) + 1))
    if (fact != "") print "rk " name " " fact
}
