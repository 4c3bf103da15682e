"""Masking of PII-looking strings in user questions before they leave the machine as
training data (``log export``).

Replaced, in this order, by a placeholder: PEM blocks and secrets (``<token>``), X.509
distinguished names in slash form (``/DC=ch/DC=cern/OU=Users/CN=jdoe``) or comma form
(``CN=jdoe,OU=Users,DC=cern,DC=ch``) (``<dn>``), e-mail addresses (``<email>``),
``Bearer <token>``, JWT-like ``xxx.yyy.zzz`` tokens, long hex strings and long base64 runs
(``<token>``), and the hostnames given in ``query_log_mask_hosts`` with their subdomains
(``<host>``).

DIRAC's own vocabulary is what the questions are about, so the patterns are written to leave
it alone: dotted module and option paths (``DIRAC.WorkloadManagementSystem.Agent``) have no
digits, commands (``dirac-wms-job-submit``) have no uppercase letters, and site names
(``LCG.CERN.ch``) keep their upper-case grid and site labels. The rules are heuristics: they
mask what looks like a secret, not what provably is one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

#: attribute names of X.509 distinguished names (upper case as grid DNs write them)
_DN_KEY = r"(?:DC|CN|OU|O|C|L|ST|UID|SN|GN|emailAddress|serialNumber)"
#: the last value of a DN: one word, then further words only when they start upper case
#: (``CN=Jane Doe``), so ``/CN=jdoe and it fails`` keeps " and it fails"
_DN_LAST = r"[^/\s,;\"'()<>]+(?: [A-Z][^/\s,;\"'()<>]*)*"
_DN_SLASH = re.compile(rf"(?:/{_DN_KEY}=[^/\n]*?(?=/{_DN_KEY}=))+/{_DN_KEY}={_DN_LAST}")
_DN_COMMA = re.compile(
    rf"(?<![\w=/]){_DN_KEY}=[^,\n]*(?:\s*,\s*{_DN_KEY}=[^,\n]*)*\s*,\s*{_DN_KEY}={_DN_LAST}"
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)", re.DOTALL)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"
)
_BEARER = re.compile(r"\b(?i:bearer)\s+([A-Za-z0-9._~+/=-]{8,})")
_JWT = re.compile(r"(?<![\w.-])[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?![\w.-])")
_HEX = re.compile(r"(?<![\w-])[0-9a-fA-F]{32,}(?![\w-])")
#: a base64 run without "/" or "-" (those split it at paths and command names), 24+ chars
_BASE64 = re.compile(r"(?<![\w+=])[A-Za-z0-9+_]{24,}={0,2}(?![\w+=])")
#: a DIRAC site name: GRID.SITE.country (LCG.CERN.ch); never a host to mask
_SITE_NAME = re.compile(r"[A-Z][A-Z0-9]*\.[A-Za-z0-9_-]*[A-Z][A-Za-z0-9_-]*\.[a-z]{2,}")

PLACEHOLDERS = {"dn": "<dn>", "email": "<email>", "token": "<token>", "host": "<host>"}


def _looks_random(text: str) -> bool:
    """Upper case, lower case and a digit together: a secret, not a DIRAC name."""
    return (
        any(c.isdigit() for c in text)
        and any(c.isupper() for c in text)
        and any(c.islower() for c in text)
    )


def _is_jwt(text: str) -> bool:
    # a JWT's header is base64url JSON, '{"' -> "eyJ"; otherwise three long random parts
    return text.startswith("eyJ") or (
        all(len(part) >= 16 for part in text.split(".")) and any(c.isdigit() for c in text)
    )


def _is_bearer_token(token: str) -> bool:
    # "Bearer authentication" is a phrase, "Bearer 3f9aK..." a credential
    return any(c.isdigit() for c in token) or len(token) >= 32


def host_pattern(hosts: Sequence[str]) -> re.Pattern[str] | None:
    """One pattern for the hosts and their subdomains (case-insensitive), None if none."""
    names = sorted({h.strip(".").lower() for h in hosts if h.strip(".")}, key=len, reverse=True)
    if not names:
        return None
    alternatives = "|".join(re.escape(h) for h in names)
    return re.compile(
        rf"(?<![\w.-])(?:[A-Za-z0-9_-]+\.)*(?:{alternatives})(?![\w-]|\.[A-Za-z0-9])",
        re.IGNORECASE,
    )


class PIIMasker:
    """Masks one text at a time; ``counts`` adds up what was masked, by kind."""

    def __init__(self, mask_hosts: Sequence[str] = ()) -> None:
        self._hosts = host_pattern(mask_hosts)
        self.counts: Counter[str] = Counter()

    def mask(self, text: str) -> str:
        text = self._sub(_PEM, text, "token")
        text = self._sub(_DN_SLASH, text, "dn")
        text = self._sub(_DN_COMMA, text, "dn")
        text = self._sub(_EMAIL, text, "email")
        text = self._sub(
            _BEARER, text, "token", keep=lambda m: not _is_bearer_token(m.group(1)), bearer=True
        )
        text = self._sub(_JWT, text, "token", keep=lambda m: not _is_jwt(m.group(0)))
        text = self._sub(_HEX, text, "token")
        text = self._sub(_BASE64, text, "token", keep=lambda m: not _looks_random(m.group(0)))
        if self._hosts is not None:
            text = self._sub(
                self._hosts, text, "host", keep=lambda m: bool(_SITE_NAME.fullmatch(m.group(0)))
            )
        return text

    def _sub(self, pattern: re.Pattern[str], text: str, kind: str, keep=None, bearer=False):
        def replace(match: re.Match[str]) -> str:
            if keep is not None and keep(match):
                return match.group(0)
            self.counts[kind] += 1
            if bearer:  # keep the scheme word: the question is about bearer auth
                return match.group(0)[: match.start(1) - match.start(0)] + PLACEHOLDERS[kind]
            return PLACEHOLDERS[kind]

        return pattern.sub(replace, text)


def mask_pii(text: str, mask_hosts: Sequence[str] = ()) -> str:
    """``text`` with each PII-looking string replaced by its placeholder."""
    return PIIMasker(mask_hosts).mask(text)
