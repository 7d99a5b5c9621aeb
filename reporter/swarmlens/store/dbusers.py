"""ClickHouse users for swarmlens' own components and for people: `swarmlens db users` and what
`swarmlens up` creates.

Everything here is SQL sent over the HTTP interface (CREATE USER, GRANT, SHOW GRANTS), which the
embedded endpoint answers from its users file (swarmlens.embedded.access). Each component of `up`
signs in as its own user with only its role: the receiver as ``swarmlens_ingest`` (insert into the
raw tables), the reporter and notifier as ``swarmlens_reporter``. Their passwords are generated on
the first start and kept in ``$SWARMLENS_DATA_DIR/clickhouse-users/<user>`` (mode 0600).
"""

from __future__ import annotations

import os
import re
import secrets

from swarmlens import config as config_mod

ROLES = ("admin", "reporter", "ingest", "analyst")
# component -> (user, role)
SERVICE_USERS = {"ingest": ("swarmlens_ingest", "ingest"), "reporter": ("swarmlens_reporter", "reporter")}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,63}$")


def quote_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid user name {name[:64]!r}: letters, digits, _ . @ -, at most 64, "
                         "starting with a letter or _")
    return "`" + name + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}")
    return roles


def create_user(client, name: str, password: str, roles: list[str], replace: bool = False) -> None:
    head = "CREATE USER OR REPLACE" if replace else "CREATE USER"
    sql = f"{head} {quote_name(name)} IDENTIFIED BY {quote_string(password)}"
    if check_roles(roles):
        sql += " DEFAULT ROLE " + ", ".join(roles)
    client.command(sql)


def set_password(client, name: str, password: str) -> None:
    client.command(f"ALTER USER {quote_name(name)} IDENTIFIED BY {quote_string(password)}")


def drop_user(client, name: str) -> None:
    client.command(f"DROP USER {quote_name(name)}")


def grant(client, name: str, roles: list[str], revoke: bool = False) -> None:
    verb, prep = ("REVOKE", "FROM") if revoke else ("GRANT", "TO")
    client.command(f"{verb} {', '.join(check_roles(roles))} {prep} {quote_name(name)}")


def list_users(client) -> list[tuple[str, list[str]]]:
    """(user, roles) for every user."""
    names = [r[0] for r in client.query("SHOW USERS").result_rows]
    out = []
    for name in names:
        grants = [r[0] for r in client.query(f"SHOW GRANTS FOR {quote_name(name)}").result_rows]
        roles: list[str] = []
        for g in grants:
            m = re.match(r"GRANT (.+) TO ", g)
            if m:
                roles += [r.strip() for r in m.group(1).split(",")]
        out.append((name, roles))
    return out


def password_path(data_dir: str, user: str) -> str:
    return os.path.join(os.path.expanduser(data_dir), "clickhouse-users", user)


def ensure_service_users(client, data_dir: str) -> dict[str, tuple[str, str]]:
    """Creates (or brings back to its kept password and role) each component's user; returns
    component -> (user, password)."""
    out = {}
    for component, (user, role) in SERVICE_USERS.items():
        path = password_path(data_dir, user)
        try:
            with open(path, encoding="utf-8") as f:
                password = f.read().strip()
        except OSError:
            password = ""
        if not password:
            password = config_mod.write_private_file(path, secrets.token_urlsafe(24) + "\n").strip()
        create_user(client, user, password, [role], replace=True)
        out[component] = (user, password)
    return out
