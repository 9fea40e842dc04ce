"""Hypothesis strategies for the values Windows accepts (usernames, passwords, computer names), and names it refuses."""

from __future__ import annotations

import string

from hypothesis import strategies as st

USERNAME_CHARS = "".join(c for c in string.ascii_letters + string.digits + " !#$%&'()-.^_`{}~")
RESERVED = [
    "Administrator",
    "administrator",
    "GUEST",
    "DefaultAccount",
    "WDAGUtilityAccount",
    "System",
    "Users",
    "Administrators",
    "Everyone",
]


def acceptable_username(name: str) -> bool:
    return (
        bool(name.strip(". "))
        and name == name.strip(" ")
        and name.lower() not in {r.lower() for r in RESERVED}
        and name.lower()
        not in {
            "guest",
            "none",
            "network",
            "interactive",
            "service",
            "batch",
            "dialup",
            "replicator",
            "guests",
            "localsystem",
            "localservice",
            "networkservice",
            "trustedinstaller",
            "defaultuser0",
            "anonymous logon",
            "creator owner",
            "backup operators",
            "power users",
            "remote desktop users",
            "authenticated users",
            "local service",
            "network service",
        }
    )


valid_usernames = st.text(alphabet=USERNAME_CHARS, min_size=1, max_size=20).filter(acceptable_username)
valid_passwords = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=127)
valid_computer_names = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,13}[A-Za-z0-9])?\Z").filter(
    lambda n: not n.isdigit()
)
