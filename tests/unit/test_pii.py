"""PII masking of logged questions: each kind masked, DIRAC's own vocabulary left alone."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.tools.log_export import question_key
from dirac_docs_mcp.tools.pii import PIIMasker, mask_pii

HOSTS = ["cern.ch", "dirac.myvo.example.org"]


@pytest.mark.parametrize(
    ("text", "masked", "kind"),
    [
        ("write to jane.doe+grid@cern.ch please", "write to <email> please", "email"),
        (
            "my DN /DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=123456/CN=Jane Doe "
            "is not registered",
            "my DN <dn> is not registered",
            "dn",
        ),
        (
            "proxy for CN=Jane Doe, OU=Users, O=Example, DC=cern, DC=ch expired",
            "proxy for <dn> expired",
            "dn",
        ),
        # robot certificates: "CN=Robot: ..." is part of the name
        ("/O=GermanGrid/OU=KIT/CN=Robot: LHCb Pilot runs", "<dn> runs", "dn"),
        (
            'curl -H "Authorization: Bearer 3f9aKx7QpL2mZt8wQ" fails',
            'curl -H "Authorization: Bearer <token>" fails',
            "token",
        ),
        (
            "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJ "
            "is refused",
            "token <token> is refused",
            "token",
        ),
        (
            "serial 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 revoked",
            "serial <token> revoked",
            "token",
        ),
        ("secret wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY leaked", "secret <token> leaked", "token"),
        (
            "cert -----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n"
            "-----END CERTIFICATE----- fails",
            "cert <token> fails",
            "token",
        ),
        (
            "lbvobox12.cern.ch cannot reach DIRAC.MyVO.example.org:9135",
            "<host> cannot reach <host>:9135",
            "host",
        ),
    ],
)
def test_each_kind_is_masked(text, masked, kind):
    masker = PIIMasker(HOSTS)
    assert masker.mask(text) == masked
    assert set(masker.counts) == {kind}


@pytest.mark.parametrize(
    "text",
    [
        "How is DIRAC.WorkloadManagementSystem.Agent.StalledJobAgent configured?",
        "dirac-wms-job-submit fails with WorkloadManagementSystem.JobWrapper.Watchdog errors",
        "what does /Resources/Sites/LCG/LCG.CERN.ch/CEs hold",  # a site name, not a host
        "DIRAC_MCP_GENERATOR_MAX_NEW_TOKENS and MaxJobsInFillMode = 5",
        "dirac-proxy-init -g dirac_user -v 24:00 and x86_64-centos7-gcc11-opt",
        "How does Bearer authentication work in DiracX?",
        "the CN of my proxy and OU=Users in the registry",
        "/cvmfs/dirac.egi.eu/dirac/v8.0.36/Linux-x86_64",
    ],
)
def test_dirac_vocabulary_is_left_alone(text):
    masker = PIIMasker(HOSTS)
    assert masker.mask(text) == text, masker.counts


def test_hosts_are_masked_only_when_configured():
    text = "lbvobox12.cern.ch is down"
    assert mask_pii(text) == text
    assert mask_pii(text, ["cern.ch"]) == "<host> is down"
    assert mask_pii("notcern.ch is down", ["cern.ch"]) == "notcern.ch is down"


def test_question_key_ignores_case_whitespace_and_punctuation():
    assert question_key("  When is a job   declared STALLED?! ") == question_key(
        "when is a job declared stalled"
    )
    assert question_key("dirac-wms-job-submit") == "dirac wms job submit"
    assert question_key("what is a pilot") != question_key("what is a job")
