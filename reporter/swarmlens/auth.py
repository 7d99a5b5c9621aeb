"""Who is asking: ops accounts (password sign-in), API bearer tokens, sessions and CSRF.

Two kinds of principal exist:

``ops``
    People running swarmlens. They sign in on /login with a password (stored as a werkzeug scrypt
    hash in ``ops_accounts``) or call the API with an ops token. They see every user.
``user``
    An end user of a Swarm app (an ``enduser.id``). They hold an API token of scope ``user`` and see
    their own tasks only: through the API, or in the browser after signing in with that token.

Tokens are ``slk_`` + 32 random bytes (URL-safe base64); only their SHA-256 is stored, so a
database dump gives no usable token, and a lookup is one key read of ``api_tokens``. A high-entropy
random token needs no slow hash: nobody can brute-force 256 bits from its SHA-256.

Browser sessions are Flask's signed cookie, checked against the store on every request. A session
holds its account's *generation*: the ``updated_at`` of the ops account, or of the token it was
opened with. Signing out, a password change, disabling the account and revoking the token each
write a new version of that row, so every cookie issued before no longer matches and is refused
server-side, even though its signature is still good (``session_principal``).
Cookies are Flask's signed cookie. The key comes from SWARMLENS_SECRET_KEY or is
generated once into SWARMLENS_DATA_DIR/reporter_secret_key, so every worker process of a server,
and every restart, signs with the same key. Forms carry a per-session CSRF token (``csrf_token``)
that every state-changing request from a cookie session must echo; bearer-token requests carry no
ambient credentials and need none.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from werkzeug.security import check_password_hash, generate_password_hash

from swarmlens.errors import SwarmlensError

TOKEN_PREFIX = "slk_"
SCOPES = ("user", "ops")
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: ``kind`` is ``ops`` or ``user``; ``id`` the ops login or user id."""

    kind: str
    id: str
    via: str  # "session" or "token"

    @property
    def is_ops(self) -> bool:
        return self.kind == "ops"

    def can_see_user(self, user_id: str) -> bool:
        return self.is_ops or user_id == self.id

    @property
    def feedback_user(self) -> str:
        """The ``feedback.user_id`` this principal votes as: ops votes never mix with end users'."""
        return f"ops:{self.id}" if self.is_ops else self.id

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


class AuthError(SwarmlensError):
    """A credential problem a person can fix (unknown login, short password, unknown token)."""


# ---------------------------------------------------------------------------------------------
# Secrets


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return generate_password_hash(password, method="scrypt")


def secret_key(config: Mapping[str, Any]) -> str:
    """SWARMLENS_SECRET_KEY, else the key kept in the data directory (created on first use)."""
    configured = config.get("SWARMLENS_SECRET_KEY") or ""
    if configured:
        return configured
    data_dir = config["SWARMLENS_DATA_DIR"]
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, "reporter_secret_key")
    try:
        # O_EXCL: of several workers starting at once, one writes and the others read its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    for _ in range(50):
        with open(path, encoding="utf-8") as fh:
            key = fh.read().strip()
        if key:
            return key
        import time

        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it to generate a new key")


def csrf_token(session) -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def csrf_ok(session, submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted and hmac.compare_digest(expected, submitted))


# ---------------------------------------------------------------------------------------------
# Store access (configuration tables; see docs/schema.md)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rows(client, name: str, config: Mapping[str, Any], **params) -> list[dict[str, Any]]:
    from swarmlens.store.client import query_file

    return list(query_file(client, name, params, config=config).named_results())


def ops_account(client, config, login: str) -> dict[str, Any] | None:
    rows = _rows(client, "ops_account", config, login=login)
    return rows[0] if rows else None


def set_ops_password(client, config, login: str, password: str, *, create: bool) -> None:
    """Creates the ops account (``create``) or changes its password; raises AuthError on misuse."""
    login = (login or "").strip()
    if not login or len(login) > 64 or any(c.isspace() for c in login):
        raise AuthError("an ops login is 1 to 64 characters without spaces")
    existing = ops_account(client, config, login)
    if create and existing:
        raise AuthError(f"ops account {login!r} exists already: use set-password")
    if not create and not existing:
        raise AuthError(f"no ops account {login!r}: create it with add-ops")
    now = _now()
    created = existing["created_at"] if existing else now
    client.insert("ops_accounts", [[login, hash_password(password), created, now, False]],
                  column_names=["login", "password_hash", "created_at", "updated_at", "disabled"],
                  database=config["SWARMLENS_DATABASE"])


def set_ops_disabled(client, config, login: str, disabled: bool) -> None:
    existing = ops_account(client, config, login)
    if not existing:
        raise AuthError(f"no ops account {login!r}")
    client.insert("ops_accounts", [[login, existing["password_hash"], existing["created_at"], _now(), disabled]],
                  column_names=["login", "password_hash", "created_at", "updated_at", "disabled"],
                  database=config["SWARMLENS_DATABASE"])


def check_ops_password(client, config, login: str, password: str) -> bool:
    account = ops_account(client, config, login or "")
    if not account or account["disabled"]:
        # Same work as a real check, so response time does not reveal which logins exist.
        check_password_hash(_DUMMY_HASH, password or "")
        return False
    return check_password_hash(account["password_hash"], password or "")


_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


def create_token(client, config, *, scope: str, owner: str, name: str = "",
                 expires_in: timedelta | None = None) -> tuple[str, str]:
    """Stores a new token's hash and returns ``(token, token_hash)``; the token is shown once."""
    if scope not in SCOPES:
        raise AuthError(f"token scope is one of {', '.join(SCOPES)}, not {scope!r}")
    owner = (owner or "").strip()
    if not owner:
        raise AuthError("a token needs an owner: a user id, or an ops login")
    if scope == "ops" and not ops_account(client, config, owner):
        raise AuthError(f"no ops account {owner!r}: create it with `swarmlens users add-ops`")
    token = new_token()
    digest = hash_token(token)
    now = _now()
    expires = now + expires_in if expires_in else None
    client.insert("api_tokens", [[digest, scope, owner, name or "", now, expires, now, False]],
                  column_names=["token_hash", "scope", "user_id", "name", "created_at", "expires_at",
                                "updated_at", "revoked"],
                  database=config["SWARMLENS_DATABASE"])
    return token, digest


def list_tokens(client, config, owner: str = "") -> list[dict[str, Any]]:
    return _rows(client, "tokens_list", config, owner=owner)


def revoke_token(client, config, token_or_prefix: str) -> dict[str, Any]:
    """Revokes the token given whole, or by a prefix (at least 8 characters) of its hash."""
    value = (token_or_prefix or "").strip()
    prefix = hash_token(value) if value.startswith(TOKEN_PREFIX) else value.lower()
    if len(prefix) < 8:
        raise AuthError("give the token itself or at least 8 characters of its hash (see `swarmlens users token list`)")
    matches = [t for t in list_tokens(client, config) if t["token_hash"].startswith(prefix)]
    if not matches:
        raise AuthError(f"no token matches {value[:16]!r}")
    if len(matches) > 1:
        raise AuthError(f"{len(matches)} tokens match {prefix!r}: give more characters")
    t = matches[0]
    client.insert("api_tokens", [[t["token_hash"], t["scope"], t["user_id"], t["name"], t["created_at"],
                                  t["expires_at"], _now(), True]],
                  column_names=["token_hash", "scope", "user_id", "name", "created_at", "expires_at",
                                "updated_at", "revoked"],
                  database=config["SWARMLENS_DATABASE"])
    return t


def principal_for_token(client, config, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown, revoked or expired."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return principal_for_token_hash(client, config, hash_token(token))


def principal_for_token_hash(client, config, digest: str) -> Principal | None:
    """As principal_for_token, from the stored hash (a browser session signed in with a token
    keeps the hash, so revoking the token ends that session too)."""
    rows = _rows(client, "token_lookup", config, token_hash=digest)
    if not rows:
        return None
    return _token_principal(client, config, rows[0])


def _token_principal(client, config, row: Mapping[str, Any]) -> Principal | None:
    if row["revoked"]:
        return None
    expires = row["expires_at"]
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        if expires <= _now():
            return None
    if row["scope"] == "ops":
        account = ops_account(client, config, row["user_id"])
        if not account or account["disabled"]:
            return None
        return Principal("ops", row["user_id"], "token")
    return Principal("user", row["user_id"], "token")


# ---------------------------------------------------------------------------------------------
# Browser sessions


def _generation(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return str(value or "")


def session_record(client, config, who: Principal, token: str = "") -> dict[str, str] | None:
    """What a browser session keeps after a sign-in (with a password, or with ``token``): the
    principal, the token's hash, and the generation it must still match; None if already invalid."""
    if token:
        digest = hash_token(token)
        rows = _rows(client, "token_lookup", config, token_hash=digest)
        if not rows:
            return None
        return {"kind": who.kind, "id": who.id, "token_hash": digest, "gen": _generation(rows[0]["updated_at"])}
    account = ops_account(client, config, who.id)
    if not account:
        return None
    return {"kind": "ops", "id": who.id, "token_hash": "", "gen": _generation(account["updated_at"])}


def session_principal(client, config, record: Mapping[str, Any]) -> Principal | None:
    """The principal of a browser session, or None when the session ended server-side: signed out,
    password changed, account disabled, token revoked or expired (its generation moved on)."""
    kind, ident, digest, gen = (record.get("kind"), record.get("id"), record.get("token_hash") or "",
                                record.get("gen") or "")
    if not ident or not gen or kind not in SCOPES:
        return None  # a cookie from before generations existed, or a forged shape: sign in again
    if digest:
        rows = _rows(client, "token_lookup", config, token_hash=digest)
        if not rows or _generation(rows[0]["updated_at"]) != gen:
            return None
        found = _token_principal(client, config, rows[0])
        if found is None or found.id != ident or found.kind != kind:
            return None
        return Principal(kind, ident, "session")
    if kind != "ops":
        return None
    account = ops_account(client, config, ident)
    if not account or account["disabled"] or _generation(account["updated_at"]) != gen:
        return None
    return Principal("ops", ident, "session")


def end_sessions(client, config, record: Mapping[str, Any]) -> None:
    """Signs out every browser session of the record's account or token: a new version of its row
    (same values, new ``updated_at``) is a new generation that no issued cookie holds."""
    digest = record.get("token_hash") or ""
    if digest:
        rows = _rows(client, "token_lookup", config, token_hash=digest)
        if rows:
            t = rows[0]
            client.insert("api_tokens", [[t["token_hash"], t["scope"], t["user_id"], t["name"], t["created_at"],
                                          t["expires_at"], _now(), t["revoked"]]],
                          column_names=["token_hash", "scope", "user_id", "name", "created_at", "expires_at",
                                        "updated_at", "revoked"],
                          database=config["SWARMLENS_DATABASE"])
        return
    account = ops_account(client, config, record.get("id") or "")
    if account:
        client.insert("ops_accounts", [[account["login"], account["password_hash"], account["created_at"], _now(),
                                        account["disabled"]]],
                      column_names=["login", "password_hash", "created_at", "updated_at", "disabled"],
                      database=config["SWARMLENS_DATABASE"])
