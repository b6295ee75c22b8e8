"""Operator set-up: the upstream command, route resolution and the admin pages."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from gateway.models import ModelRoute, RouteTarget, Upstream, UpstreamCredential
from gateway.routing import load_route_table
from gateway.services import upstream_add

pytestmark = pytest.mark.django_db

SECRET = "sk-ant-api03-" + "s" * 40


def test_upstream_add_routes_every_claude_model_by_default(capsys):
    call_command("upstream", "add", "main", "--base-url", "https://api.anthropic.com/", "--credential", SECRET)
    assert "Added upstream main" in capsys.readouterr().out
    upstream = Upstream.objects.get(name="main")
    assert upstream.base_url == "https://api.anthropic.com"
    assert upstream.credentials.get().secret == SECRET
    assert list(RouteTarget.objects.values_list("route__pattern", flat=True)) == ["claude-*"]


def test_upstream_add_with_model_globs_and_a_fallback():
    upstream_add(name="first", base_url="https://a.example", credentials=["k1"], model_globs=["claude-sonnet-*"])
    upstream_add(name="second", base_url="https://b.example", credentials=["k2"], model_globs=["claude-sonnet-*"])
    names = [candidate.upstream.name for candidate in load_route_table().candidates("claude-sonnet-4-6")]
    assert names == ["first", "second"]


def test_upstream_add_again_adds_credentials_without_duplicates():
    upstream_add(name="main", base_url="https://a.example", credentials=["k1"])
    upstream_add(name="main", base_url="https://a.example", credentials=["k1", "k2"])
    assert sorted(UpstreamCredential.objects.values_list("secret", flat=True)) == ["k1", "k2"]
    assert RouteTarget.objects.count() == 1


def test_upstream_add_refuses_bad_input():
    with pytest.raises(CommandError, match="not an http"):
        call_command("upstream", "add", "x", "--base-url", "ftp://nope", "--credential", "k")
    with pytest.raises(CommandError, match="at least one --credential"):
        call_command("upstream", "add", "x", "--base-url", "https://a.example")


def test_a_bedrock_upstream_needs_a_region_and_takes_model_ids():
    with pytest.raises(CommandError, match="region"):
        call_command("upstream", "add", "a", "--kind", "bedrock", "--base-url", "http://10.0.0.1", "--credential", "k")
    assert not Upstream.objects.filter(name="a").exists()
    model_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    call_command(
        "upstream",
        "add",
        "aws",
        "--kind",
        "bedrock",
        "--base-url",
        "https://bedrock-runtime.eu-west-1.amazonaws.com",
        "--credential",
        "AKIDEXAMPLE:secret",
        "--model",
        f"claude-sonnet-4-5={model_id}",
    )
    (candidate,) = load_route_table().candidates("claude-sonnet-4-5")
    assert (candidate.upstream.kind, candidate.upstream.region, candidate.upstream_model) == (
        "bedrock",
        "eu-west-1",
        model_id,
    )


def test_a_vertex_upstream_reads_its_service_account_key_from_a_file(tmp_path):
    key = '{"type": "service_account", "project_id": "p"}'
    (tmp_path / "key.json").write_text(key + "\n")
    base_url = "https://us-east5-aiplatform.googleapis.com"
    with pytest.raises(CommandError, match="cannot read the credential file"):
        call_command(
            "upstream", "add", "v", "--kind", "vertex", "--base-url", base_url, "--credential", "@nowhere.json"
        )
    with pytest.raises(CommandError, match="location"):
        call_command("upstream", "add", "v", "--kind", "vertex", "--base-url", base_url, "--credential", "k")
    call_command(
        "upstream", "add", "v", "--kind", "vertex", "--base-url", base_url, "--region", "us-east5",
        "--credential", f"@{tmp_path / 'key.json'}",
    )  # fmt: skip
    upstream = Upstream.objects.get(name="v")
    assert (upstream.region, upstream.credentials.get().secret) == ("us-east5", key)


def test_upstream_list_masks_credentials(capsys):
    upstream_add(name="main", base_url="https://a.example", credentials=[SECRET])
    call_command("upstream", "list")
    out = capsys.readouterr().out
    assert "main anthropic https://a.example enabled" in out
    assert SECRET not in out
    assert f"…{SECRET[-4:]}" in out


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-6", ["sonnet-exact", "sonnet-family", "everything"]),
        ("claude-sonnet-5-0", ["sonnet-family", "everything"]),
        ("claude-opus-5-5", ["everything"]),
        ("claude-3-5-haiku-latest", ["everything"]),
    ],
)
def test_most_specific_route_first_then_fall_through(model, expected):
    upstream_add(name="everything", base_url="https://c.example", credentials=["k"], model_globs=["claude-*"])
    upstream_add(name="sonnet-family", base_url="https://b.example", credentials=["k"], model_globs=["claude-sonnet-*"])
    upstream_add(
        name="sonnet-exact",
        base_url="https://a.example",
        credentials=["k"],
        model_globs=["claude-sonnet-4-6"],
    )
    table = load_route_table()
    assert [candidate.upstream.name for candidate in table.candidates(model)] == expected
    assert table.candidates("gpt-4o") == []
    assert table.matching_routes("gpt-4o") == ()


def test_disabled_upstreams_and_credentials_are_skipped():
    upstream_add(name="main", base_url="https://a.example", credentials=["k1"])
    UpstreamCredential.objects.update(enabled=False)
    assert load_route_table().candidates("claude-sonnet-4-6") == []


def test_seeded_catalogue_covers_the_product_models():
    patterns = set(ModelRoute.objects.values_list("pattern", flat=True))
    assert {
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        "claude-haiku-4-5",
        "claude-opus-*",
        "claude-*",
    } <= patterns


def test_admin_never_shows_a_credential(admin_client):
    upstream_add(name="main", base_url="https://a.example", credentials=[SECRET])
    upstream = Upstream.objects.get()
    for url in ("/admin/gateway/upstream/", f"/admin/gateway/upstream/{upstream.pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
    assert admin_client.get("/admin/gateway/modelroute/").status_code == 200


def test_admin_keeps_a_credential_when_its_field_is_left_empty(admin_client):
    upstream_add(name="main", base_url="https://a.example", credentials=[SECRET])
    upstream = Upstream.objects.get()
    credential = upstream.credentials.get()
    form = {
        "name": "main",
        "kind": "anthropic",
        "base_url": "https://a.example",
        "extra_headers": "{}",
        "connect_timeout": "10",
        "read_timeout": "600",
        "enabled": "on",
        "priority": "100",
        "weight": "1",
        "credentials-TOTAL_FORMS": "1",
        "credentials-INITIAL_FORMS": "1",
        "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000",
        "credentials-0-id": str(credential.pk),
        "credentials-0-upstream": str(upstream.pk),
        "credentials-0-label": "renamed",
        "credentials-0-secret": "",
        "credentials-0-enabled": "on",
        "credentials-0-disabled_reason": "",
    }
    response = admin_client.post(f"/admin/gateway/upstream/{upstream.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    credential.refresh_from_db()
    assert (credential.label, credential.secret) == ("renamed", SECRET)
