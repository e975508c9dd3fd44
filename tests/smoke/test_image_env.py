"""The plone image's variables and extension points, each checked on what Zope really does with
it: the probe (tests/smoke/image_probe.py, run by the entrypoint's `run` command, no server)
prints the effective configuration of its process, the storage it opened and each site's
language, timezone and profiles; a served ZEO client answers `++api++`, CORS preflights, 413 and
a catalog search for a word of an uploaded PDF.

Two databases, shared within the module: a FileStorage volume (Classic UI site, admin from
ADMIN_USER/ADMIN_PASSWORD_FILE) and a ZEO server (Volto site, LANGUAGE/TIMEZONE, ZEO_* client
settings, `pack` with zeopack). Only the built image is needed, not the compose stack;
containers, volumes and the network are removed at the end.
"""

import base64
import json
import pathlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from .conftest import DOCKER
from .test_image import IMAGE, docker, host_port, ok, wait_http

NEEDS_STACK = False
RUN = uuid.uuid4().hex[:6]
PROBE = pathlib.Path(__file__).with_name("image_probe.py")
ADMIN_PASSWORD = "env-Secret-5"
CHIEF_PASSWORD = "chief-Secret-8"
ORIGIN = "http://volto.example.test"
MB = 1024 * 1024
NAMES = []
DEV_ZCML = ('<configure xmlns="http://namespaces.zope.org/zope">\n'
            '  <utility component=".MARK" provides="zope.interface.Interface" name="txzdev" />\n'
            '</configure>\n')


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


def utility_zcml(name):
    return ('<configure xmlns="http://namespaces.zope.org/zope">\n'
            f'  <utility component="os.sep" provides="zope.interface.Interface" name="{name}" />\n'
            '</configure>\n')


def new_name():
    NAMES.append(f"txzsmoke-env-{RUN}-{len(NAMES)}")
    return NAMES[-1]


def once(*args, env=(), mounts=(), network=None, timeout=300):
    """The image once with ARGS as command, in a named container removed even on a timeout."""
    name = new_name()
    options = [arg for pair in env for arg in ("-e", pair)]
    options += [arg for mount in mounts for arg in ("-v", mount)]
    if network:
        options += ["--network", network]
    try:
        return subprocess.run([DOCKER, "run", "--rm", "--name", name, *options, IMAGE, *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        docker("rm", "-fv", name, check=False)


def probe(env=(), mounts=(), network=None):
    """(facts, CompletedProcess) of image_probe.py run by the entrypoint's `run` command."""
    started = time.monotonic()
    result = ok(once("run", "/probe/image_probe.py", env=env, network=network,
                     mounts=(f"{PROBE}:/probe/image_probe.py:ro", *mounts)))
    print(f"\nprobe: {time.monotonic() - started:.1f} s")
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line[len("PROBE "):]), result


def request(url, method="GET", data=None, headers=None, auth=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    headers = dict(headers or {})
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method,
                                                           headers=headers), timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def tiny_pdf(text):
    """A valid one-page PDF showing TEXT in Helvetica (pdftotext finds it)."""
    stream = b"BT /F1 24 Tf 72 720 Td (%s) Tj ET" % text.encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module", autouse=True)
def cleanup():
    yield
    for name in NAMES:
        docker("rm", "-fv", name, check=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Host files mounted into the containers: the admin password file, a DEVELOP package
    (writable: pip writes its metadata there) and the image-level extension points."""
    root = tmp_path_factory.mktemp("env")
    (root / "admin-password").write_text(CHIEF_PASSWORD + "\n")
    package = root / "src" / "txzdev"
    (package / "txzdev").mkdir(parents=True)
    (package / "txzdev" / "__init__.py").write_text("MARK = 'txzdev'\n")
    (package / "txzdev" / "configure.zcml").write_text(DEV_ZCML)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "txzdev"\nversion = "1.0"\n'
        '[tool.setuptools.package-data]\ntxzdev = ["*.zcml"]\n')
    (root / "image.conf").write_text("<product-config txzimage>\n  mark image\n</product-config>\n")
    (root / "image-configure.zcml").write_text(utility_zcml("txzimage"))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return root


@pytest.fixture(scope="module")
def fs_volume():
    volume = f"txzsmoke-env-fs-{RUN}"
    docker("volume", "create", volume)
    yield volume
    docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="module")
def zeo():
    """A ZEO server on a network of its own: (network, container, volume)."""
    network, volume = f"txzsmoke-env-{RUN}", f"txzsmoke-env-zeo-{RUN}"
    docker("network", "create", network)
    docker("volume", "create", volume)
    name = new_name()
    docker("run", "-d", "--name", name, "--network", network, "--network-alias", "zeo",
           "-v", f"{volume}:/data", "-e", "ROLE=zeo", IMAGE)
    try:
        yield network, name, volume
    finally:
        docker("rm", "-fv", name, check=False)
        docker("network", "rm", network, check=False)
        docker("volume", "rm", "-f", volume, check=False)


ZEO_CLIENT = ("ZEO_ADDRESS=zeo:8100",)


# --- commands that stop before Zope ----------------------------------------------------------

def test_unknown_type_and_run_without_a_script_are_refused():
    refused = once("create-site", env=["SITE=Plone", "TYPE=spa"], timeout=60)
    assert refused.returncode == 2 and "unknown TYPE=spa (classic, volto)" in refused.stderr
    usage = once("run", timeout=60)
    assert usage.returncode == 2 and "usage: run SCRIPT [ARGS]" in usage.stderr


def test_every_translation_has_a_compiled_mo_file_and_text_extractors_are_there():
    script = ('find /opt/venv/lib -path "*/LC_MESSAGES/*.po" ! -path "*/tests/*" | '
              'while read -r po; do [ -e "${po%.po}.mo" ] || echo "missing ${po%.po}.mo"; done; '
              'for tool in pdftotext wvText; do command -v $tool; done')
    result = ok(once("sh", "-c", script, timeout=60))
    assert "missing" not in result.stdout, result.stdout
    assert result.stdout.split() == ["/usr/bin/pdftotext", "/usr/bin/wvText"]


# --- FileStorage: Classic UI site, the admin, Zope's settings, extension points ---------------

def test_create_classic_with_admin_user_password_file_profiles_and_content(fs_volume, files):
    started = time.monotonic()
    result = ok(once("create-classic", env=[
        "SITE=Classic", "ADMIN_USER=chief", "ADMIN_PASSWORD_FILE=/run/secrets/admin",
        "SETUP_CONTENT=true", "PROFILES=txzserver:default,txzserver:example-rules"],
        mounts=[f"{fs_volume}:/data", f"{files / 'admin-password'}:/run/secrets/admin:ro"]))
    assert "site /Classic created" in result.stdout
    print(f"\ncreate-classic: {time.monotonic() - started:.1f} s")
    facts, _ = probe(env=[f"PROBE_PASSWORD={CHIEF_PASSWORD}"], mounts=[f"{fs_volume}:/data"])
    assert facts["users"] == ["chief"] and facts["authenticated"] == ["chief"]
    site = facts["sites"]["Classic"]
    assert site["language"] == "en" and site["timezone"] == "Europe/Berlin"  # plone-backend's defaults
    assert site["profiles"] == ["plone.app.caching:default", "plone.restapi:default",
                                "txzserver:default", "txzserver:example-rules"]
    assert {"news", "events", "Members"} <= set(site["ids"])  # SETUP_CONTENT
    assert not site["blocks"]


def test_zope_settings_and_extension_points_reach_zope(fs_volume, files):
    # the volume's own extension points, written once: a zope.conf.d snippet, a ZCML include
    ok(once("sh", "-c", 'mkdir -p /data/etc/zope.conf.d /data/etc/package-includes'
            ' && printf %s "$1" > /data/etc/zope.conf.d/50-probe.conf'
            ' && printf %s "$2" > /data/etc/package-includes/mine-configure.zcml',
            "sh", "<product-config txzprobe>\n  mark volume\n</product-config>\n",
            utility_zcml("txzmine"), mounts=[f"{fs_volume}:/data"], timeout=60))
    facts, result = probe(env=[
        "SERVER_THREADS=7", "ZODB_CACHE_SIZE=1234", "MAX_REQUEST_BODY_SIZE=3MB",
        "ZOPE_FORM_MEMORY_LIMIT=5MB", "ZOPE_FORM_DISK_LIMIT=2GB", "ZOPE_FORM_MEMFILE_LIMIT=8KB",
        "IDLE_TIMEOUT=33s", "SHUTDOWN_TIMEOUT=5s", "DEBUG_MODE=on", "LOG_LEVEL=DEBUG",
        "SECURITY_POLICY_IMPLEMENTATION=PYTHON", "VERBOSE_SECURITY=on",
        "DEFAULT_ZPUBLISHER_ENCODING=iso-8859-15", "CLIENT_HOME=/data/client",
        "DEVELOP=/src/txzdev", "PIP_PARAMS=--no-index --no-build-isolation", "ZCML=txzdev",
        "TRUSTED_PROXY=10.1.2.3", "TRUSTED_PROXY_NETWORK=10.244.0.0/16", "INSTANCE_NAME=probe-7",
        "LOG_FORMAT=json"],
        mounts=[f"{fs_volume}:/data", f"{files / 'src'}:/src",
                f"{files / 'image.conf'}:/app/etc/zope.conf.d/10-image.conf:ro",
                f"{files / 'image-configure.zcml'}:/app/etc/package-includes/image-configure.zcml:ro"])
    assert facts["threads"] == 7
    assert facts["cache_size"] == facts["connection_cache_size"] == 1234
    assert facts["max_request_body_size"] == 3 * MB
    assert facts["form_limits"] == [5 * MB, 2048 * MB, 8 * 1024]
    assert (facts["idle_timeout"], facts["shutdown_timeout"]) == (33, 5)
    assert facts["debug_mode"] is True and facts["log_level"] == "DEBUG"
    # the event log writes DEBUG lines, as JSON (LOG_FORMAT=json)
    json_lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(record["level"] == "DEBUG" for record in json_lines)
    assert facts["log_format"] == "json"
    assert facts["trusted_proxies"] == ["10.1.2.3", "10.244.0.0/16"]
    assert facts["instance_name"] == "probe-7"
    assert facts["security_policy_implementation"] == "PYTHON" and facts["verbose_security"] is True
    assert facts["default_zpublisher_encoding"] == "iso-8859-15"
    assert facts["clienthome"] == "/data/client"
    # zope.conf.d of the image and of the volume; ZCML of the image, the volume and ZCML=
    # (the DEVELOP package, installed editable from /src)
    assert facts["product_config"] == {"txzimage": {"mark": "image"}, "txzprobe": {"mark": "volume"}}
    assert facts["utilities"] == ["txzdev", "txzimage", "txzmine"]
    assert "installing DEVELOP (editable): /src/txzdev" in result.stderr
    assert facts["txzdev_origin"] == "/src/txzdev/txzdev/__init__.py"  # editable: the mounted source
    assert facts["site_zcml"] == "/app/etc/site.zcml"
    assert facts["storage"] == {"class": "BlobStorage", "read_only": False}


def test_a_restart_without_the_variables_keeps_only_the_volume_extensions(fs_volume):
    facts, result = probe(mounts=[f"{fs_volume}:/data"])
    assert facts["threads"] == 4 and facts["cache_size"] == 30000
    assert facts["max_request_body_size"] == 1024 * MB
    assert facts["form_limits"] == [4 * MB, 1024 * MB, 4 * 1024]
    assert (facts["idle_timeout"], facts["shutdown_timeout"]) == (60, 8)
    assert facts["debug_mode"] is False and facts["log_level"] == "INFO"
    assert " DEBUG [" not in result.stderr
    assert facts["security_policy_implementation"] == "C" and facts["verbose_security"] is False
    assert facts["default_zpublisher_encoding"] == "utf-8" and facts["clienthome"] == "/data/var"
    # the volume's snippet and ZCML stay; what ZCML= made is gone with the variable
    assert facts["product_config"] == {"txzprobe": {"mark": "volume"}}
    assert facts["utilities"] == ["txzmine"] and facts["site_zcml"] == "/app/etc/site.zcml"
    assert facts["txzdev_origin"] is None  # DEVELOP installs into the container, not the volume


OLD_SITE_ZCML = """<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:five="http://namespaces.zope.org/five"
           xmlns:plone="http://namespaces.plone.org/plone">
  <include package="Zope2.App" />
  <five:loadProducts file="meta.zcml"/>
  <five:loadProducts />
  <five:loadProductsOverrides />
  <include package="plone.rest" file="meta.zcml" />
  <plone:CORSPolicy allow_origin="http://old.example.test" />
</configure>
"""


def test_site_zcml_of_an_older_image_is_replaced_and_one_of_your_own_kept():
    volume = f"txzsmoke-env-zcml-{RUN}"
    docker("volume", "create", volume)
    try:
        write = 'mkdir -p /data/etc && printf %s "$1" > /data/etc/site.zcml'
        # the file an older image wrote for CORS_ALLOW_ORIGIN: replaced by the link
        ok(once("sh", "-c", write, "sh", OLD_SITE_ZCML, mounts=[f"{volume}:/data"], timeout=60))
        facts, _ = probe(mounts=[f"{volume}:/data"])
        assert facts["site_zcml"] == "/app/etc/site.zcml" and facts["utilities"] == []
        # a site.zcml of your own: used, and left as it is
        own = OLD_SITE_ZCML.replace(
            '<plone:CORSPolicy allow_origin="http://old.example.test" />',
            '<utility component="os.sep" provides="zope.interface.Interface" name="txzmine" />')
        ok(once("sh", "-c", "rm /data/etc/site.zcml && " + write, "sh", own,
                mounts=[f"{volume}:/data"], timeout=60))
        facts, _ = probe(mounts=[f"{volume}:/data"])
        assert facts["site_zcml"] is None and facts["utilities"] == ["txzmine"]
        kept = ok(once("cat", "/data/etc/site.zcml", mounts=[f"{volume}:/data"], timeout=60))
        assert kept.stdout == own
    finally:
        docker("volume", "rm", "-f", volume, check=False)


# --- ZEO: Volto site, client settings, a served instance, zeopack -----------------------------

def test_create_volto_with_language_and_timezone(zeo):
    network, _, _ = zeo
    started = time.monotonic()
    result = ok(once("create-volto", network=network, env=[
        *ZEO_CLIENT, "SITE=Volto", "LANGUAGE=de", "TIMEZONE=America/New_York", "SETUP_CONTENT=true",
        f"ADMIN_PASSWORD={ADMIN_PASSWORD}"]))
    assert "site /Volto created" in result.stdout
    print(f"\ncreate-volto: {time.monotonic() - started:.1f} s")


def test_zeo_client_settings(zeo):
    network, _, volume = zeo
    # the client mounts the server's volume: its blob directory is shared (ZEO_SHARED_BLOB_DIR)
    facts, result = probe(network=network, mounts=[f"{volume}:/data"], env=[
        *ZEO_CLIENT, "ZEO_STORAGE=1", "ZEO_READ_ONLY=true", "ZEO_CLIENT_READ_ONLY_FALLBACK=true",
        "ZEO_CLIENT_CACHE_SIZE=64MB", "ZEO_WAIT_TIMEOUT=3", "ZEO_SHARED_BLOB_DIR=on",
        "ZEO_DROP_CACHE_RATHER_VERIFY=true", "ZODB_CACHE_SIZE=4321"])
    # read-only with fallback: ZEO opens it writable while the server allows it
    assert facts["storage"] == {
        "class": "ClientStorage", "config_read_only": True, "read_only": False,
        "read_only_fallback": True, "blob_dir": "/data/blobstorage", "shared_blob_dir": True,
        "cache_size": 64 * MB, "server": [["zeo", 8100]], "storage": "1", "wait_timeout": 3}
    assert facts["cache_size"] == facts["connection_cache_size"] == 4321
    assert "ZEO_DROP_CACHE_RATHER_VERIFY is ignored" in result.stderr
    site = facts["sites"]["Volto"]
    assert site["language"] == "de" and site["timezone"] == "America/New_York"
    assert site["blocks"]  # a Volto site root has blocks
    assert {"plone.volto:default", "plone.app.caching:default", "plone.restapi:default",
            "txzserver:default"} <= set(site["profiles"])
    default, _ = probe(network=network, env=[*ZEO_CLIENT, "ZEO_READ_ONLY=true"])
    assert default["storage"]["read_only"] is True and default["storage"]["read_only_fallback"] is False
    assert default["storage"]["blob_dir"] == "/data/blobcache" and not default["storage"]["shared_blob_dir"]
    assert default["storage"]["cache_size"] == 128 * MB and default["storage"]["wait_timeout"] == 1


def test_zeo_start_timeout():
    started = time.monotonic()
    result = once("run", "/probe/image_probe.py", env=["ZEO_ADDRESS=nowhere.invalid:8100",
                                                      "ZEO_START_TIMEOUT=2"], timeout=60)
    assert result.returncode == 2 and "not reachable after 2 s" in result.stderr
    assert time.monotonic() - started < 30


@pytest.fixture(scope="module")
def volto_container(zeo):
    """A served ZEO client with the Volto site, a 1 MB body limit, every CORS_* variable, JSON logs
    and the metrics listener published."""
    network, _, _ = zeo
    name = new_name()
    docker("run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8080",
           "-p", "127.0.0.1::8082", "-e", "LOG_FORMAT=json", "-e", "METRICS_PATH=/probe-metrics",
           "-e", ZEO_CLIENT[0], "-e", "SITE=Volto", "-e", "TYPE=volto", "-e", "MAX_REQUEST_BODY_SIZE=1MB",
           "-e", f"CORS_ALLOW_ORIGIN={ORIGIN}", "-e", "CORS_ALLOW_METHODS=GET,POST,OPTIONS",
           "-e", "CORS_ALLOW_CREDENTIALS=false", "-e", "CORS_EXPOSE_HEADERS=X-Probe-Exposed",
           "-e", "CORS_ALLOW_HEADERS=Accept,Authorization,Content-Type,X-Probe", "-e", "CORS_MAX_AGE=77",
           IMAGE)
    try:
        wait_http(name, 8080, "/Volto/ok")
        yield name, f"http://127.0.0.1:{host_port(name, 8080)}/Volto"
    finally:
        docker("stop", name, check=False, timeout=60)
        docker("rm", "-fv", name, check=False)


@pytest.fixture(scope="module")
def volto(volto_container):
    return volto_container[1]


def test_api_traversal_serves_the_volto_site(volto):
    status, headers, body = request(f"{volto}/++api++")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    site = json.loads(body)
    assert site["@id"] == volto and site["@type"] == "Plone Site" and site["blocks"]
    # as Volto's server-side proxy asks (seamless mode): the public origin in the path
    root = volto.removesuffix("/Volto")
    status, _, body = request(f"{root}/VirtualHostBase/https/volto.example.test:443/Volto/++api++"
                              "/VirtualHostRoot/@navigation")
    assert status == 200 and json.loads(body)["@id"] == "https://volto.example.test/@navigation"


def test_cors_preflight_and_response_follow_every_cors_variable(volto):
    status, headers, _ = request(f"{volto}/++api++", method="OPTIONS", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-Probe"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Methods"] == "POST"  # plone.rest names the one asked for
    assert "X-Probe" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Max-Age"] == "77"
    assert headers.get("Access-Control-Allow-Credentials") is None  # CORS_ALLOW_CREDENTIALS=false
    refused, headers, _ = request(f"{volto}/++api++", method="OPTIONS", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"})
    assert headers.get("Access-Control-Allow-Origin") is None, refused
    status, headers, _ = request(f"{volto}/++api++", headers={"Origin": ORIGIN})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Expose-Headers"] == "X-Probe-Exposed"


def test_a_body_above_max_request_body_size_gets_413(volto):
    status, _, _ = request(f"{volto}/++api++", method="POST", data=b"x" * (2 * MB),
                           headers={"Content-Type": "application/json"}, auth=("admin", ADMIN_PASSWORD))
    assert status == 413


def test_an_uploaded_pdf_is_found_by_a_word_in_it(volto):
    word = f"txzword{uuid.uuid4().hex[:10]}"
    payload = {"@type": "File", "title": "Probe PDF", "file": {
        "data": base64.b64encode(tiny_pdf(f"The {word} is here")).decode(), "encoding": "base64",
        "filename": "probe.pdf", "content-type": "application/pdf"}}
    status, _, body = request(f"{volto}/++api++", method="POST", data=json.dumps(payload).encode(),
                              headers={"Content-Type": "application/json", "Accept": "application/json"},
                              auth=("admin", ADMIN_PASSWORD))
    assert status == 201, body[:500]
    status, _, body = request(f"{volto}/++api++/@search?SearchableText={word}",
                              auth=("admin", ADMIN_PASSWORD))
    found = json.loads(body)
    assert status == 200 and found["items_total"] == 1, found
    assert found["items"][0]["title"] == "Probe PDF"


def scrape(url):
    """{(name, labels): value} of a Prometheus text page."""
    status, _, body = request(url)
    assert status == 200
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def test_metrics_count_what_the_client_did_and_logs_are_json(volto_container):
    """METRICS_PORT/METRICS_PATH: the counters move by what this test asked (the image's health
    check asks /Volto/ok too, so 404s are counted exactly); LOG_FORMAT=json: every line parses."""
    name, volto = volto_container
    metrics = f"http://127.0.0.1:{host_port(name, 8082)}/probe-metrics"
    key = 'txzserver_http_requests_total{protocol="http/1.1",status="404"}'
    before = scrape(metrics).get(key, 0)
    for n in range(5):
        status, _, _ = request(f"{volto}/no-such-page-{n}")
        assert status == 404
    after = scrape(metrics)
    assert after[key] - before == 5
    assert after['txzserver_http_connections_max'] > 0
    assert request(f"{volto}/probe-metrics")[0] == 404  # not under the Zope tree
    deadline = time.monotonic() + 10  # access lines are written in batches, 0.1 s apart
    while True:
        logs = docker("logs", name)
        lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line.startswith("{")]
        records = [json.loads(line) for line in lines]
        access = [r for r in records if r.get("status") == 404 and "no-such-page-" in r.get("path", "")]
        if len(access) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(access) == 5 and all(r["method"] == "GET" and r["protocol"] for r in access)
    assert any(r.get("level") == "INFO" and r.get("logger") for r in records)


def data_fs(container):
    listing = docker("exec", container, "ls", "-l", "/data/filestorage").stdout
    return {line.split()[-1]: int(line.split()[4]) for line in listing.splitlines()[1:]}


def test_pack_zeo_with_zeopack_keeping_no_history(zeo):
    network, server, _ = zeo
    before = data_fs(server)["Data.fs"]
    started = time.monotonic()
    result = ok(once("pack", network=network, env=ZEO_CLIENT, timeout=120))
    seconds = time.monotonic() - started
    assert "packing ZEO storage 1 at zeo:8100, keeping 0 days of history" in result.stdout
    assert result.stdout.rstrip().endswith("packed")
    assert "ZODB closed" not in result.stderr  # no Zope was started
    after = data_fs(server)
    print(f"\nzeopack: {seconds:.1f} s; Data.fs {before} -> {after['Data.fs']} bytes")
    assert after["Data.fs"] < before and "Data.fs.old" not in after  # ZEO_PACK_KEEP_OLD=false
    own = docker("exec", server, "/app/bin/docker-entrypoint.sh", "pack", "1", check=False)
    assert own.returncode == 0 and "at 127.0.0.1:8100, keeping 1 days" in own.stdout, own.stderr
    refused = once("pack", "soon", network=network, env=ZEO_CLIENT, timeout=60)
    assert refused.returncode == 2 and "a whole number of days" in refused.stderr
