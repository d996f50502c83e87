"""The download step against a local stand-in Kaggle server, through the real snakemake and the real kaggle client."""

import os

import pytest
import requests

from conftest import COMPETITION, output_of, snakemake
from kaggle_stub import RULES_MESSAGE, KaggleStub
from wavefold import archives, kaggle_api

ARCHIVE = f"resources/{COMPETITION}/train.7z"
TEST_CONFIG = {"source": "kaggle", "kaggle": {"retries": 3, "backoff_seconds": 0.05}}


@pytest.fixture
def stub(tiny_demo):
    server = KaggleStub(files={COMPETITION: tiny_demo / f"{COMPETITION}.zip"}).start()
    yield server
    server.stop()


def download(stub, workdir, env=None):
    env = stub.client_env(dict(os.environ), workdir / "home") if env is None else env
    return snakemake(workdir, ARCHIVE, config=TEST_CONFIG, env=env)


@pytest.mark.dag
def test_download_through_the_real_client(stub, tmp_path):
    result = download(stub, tmp_path)
    assert result.returncode == 0, output_of(result)
    for name in ("train.7z", "test.7z", "sample_submission.7z"):
        assert (tmp_path / "resources" / COMPETITION / name).stat().st_size > 0
    assert stub.calls[0] == "DownloadDataFiles" and stub.calls[1].startswith("GET ")
    assert "Kaggle credentials from" in (tmp_path / "logs" / "download.log").read_text()


@pytest.mark.dag
def test_no_credentials_says_how_to_provide_them(stub, tmp_path):
    env = stub.client_env(dict(os.environ), tmp_path / "home")
    (tmp_path / "home" / ".kaggle" / "kaggle.json").unlink()
    result = download(stub, tmp_path, env)
    assert result.returncode != 0
    assert "No Kaggle credentials found" in output_of(result) and "kaggle.json" in output_of(result)
    assert stub.calls == []


@pytest.mark.dag
def test_wrong_key_is_a_401(stub, tmp_path):
    env = stub.client_env(dict(os.environ), tmp_path / "home")
    (tmp_path / "home" / ".kaggle" / "kaggle.json").write_text('{"username": "wavefold-test", "key": "wrong"}')
    result = download(stub, tmp_path, env)
    assert result.returncode != 0 and "refused the credentials (401" in output_of(result)


@pytest.mark.dag
def test_rules_not_accepted_gives_the_rules_url(stub, tmp_path):
    stub.fail("DownloadDataFiles", 403, RULES_MESSAGE)
    result = download(stub, tmp_path)
    assert result.returncode != 0
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/rules" in output_of(result)
    assert stub.calls.count("DownloadDataFiles") == 1  # a refusal is not retried


@pytest.mark.dag
def test_rate_limit_is_retried_with_backoff(stub, tmp_path):
    stub.fail("DownloadDataFiles", 429, "Too many requests", times=2)
    result = download(stub, tmp_path)
    assert result.returncode == 0, output_of(result)
    assert stub.calls.count("DownloadDataFiles") == 3
    assert "retrying in" in (tmp_path / "logs" / "download.log").read_text()


@pytest.mark.dag
def test_persistent_server_errors_fail_clearly(stub, tmp_path):
    stub.fail("DownloadDataFiles", 503, "Service unavailable", times=3)
    result = download(stub, tmp_path)
    assert result.returncode != 0
    assert "failed after 3 attempts" in output_of(result) and "503" in output_of(result)


@pytest.mark.dag
def test_broken_off_download_is_recovered_or_refused(stub, tiny_demo, tmp_path):
    # The connection drops halfway once; the client retries on its own (with a Range request that
    # this server ignores). Whatever the client leaves, only complete, verified archives are kept.
    stub.truncate_downloads = 1
    result = download(stub, tmp_path)
    if result.returncode == 0:
        names = ("train.7z", "test.7z", "sample_submission.7z")
        unpacked = archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", tmp_path / "reference", names)
        for reference in unpacked:
            assert (tmp_path / "resources" / COMPETITION / reference.name).read_bytes() == reference.read_bytes()
    else:
        assert "not a complete" in output_of(result) or "cut off" in output_of(result)
        assert not (tmp_path / ARCHIVE).exists()


def test_credentials_lookup_order(tmp_path):
    assert kaggle_api.credentials_source({"KAGGLE_API_TOKEN": "t"}, tmp_path) == "KAGGLE_API_TOKEN"
    assert kaggle_api.credentials_source({}, tmp_path) is None
    (tmp_path / ".config" / "kaggle").mkdir(parents=True)
    (tmp_path / ".config" / "kaggle" / "kaggle.json").write_text("{}")
    assert kaggle_api.credentials_source({}, tmp_path).endswith(".config/kaggle/kaggle.json")
    assert kaggle_api.credentials_source({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, tmp_path) == "KAGGLE_USERNAME/KAGGLE_KEY"


def test_explain_classifies_errors():
    def http_error(code):
        response = requests.Response()
        response.status_code = code
        return requests.HTTPError("boom", response=response)

    assert kaggle_api.explain(http_error(429), "c")[1] and kaggle_api.explain(http_error(502), "c")[1]
    assert not kaggle_api.explain(http_error(404), "c")[1]
    assert kaggle_api.explain(requests.ConnectionError("down"), "c")[1]
