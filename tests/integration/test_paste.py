"""`runwsgi zope.ini` with `[server:main] use = egg:txzserver`: Zope's own startup, our server."""

import sys
from pathlib import Path

import httpx

from tests.support.instance import STORAGE, copy_instance_data
from tests.support.server import ServerProcess

INI = """[server:main]
use = egg:txzserver
listen = 127.0.0.1:0
h2c = on
threads = 2

[app:zope]
use = egg:Zope#main
zope_conf = %(here)s/zope.conf

[pipeline:main]
pipeline =
    egg:Zope#httpexceptions
    zope

[loggers]
keys = root

[handlers]
keys = eventlog

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = eventlog

[handler_eventlog]
class = FileHandler
args = (r'%(here)s/../log/event.log', 'a')
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s
"""


def _paste_instance(directory, template, server_options=""):
    for sub in ("etc", "var", "log"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    copy_instance_data(template["directory"], directory)
    (directory / "etc" / "zope.conf").write_text(
        f"%define INSTANCE {directory}\ninstancehome $INSTANCE\n{STORAGE}\n")
    ini = INI.replace("threads = 2", "threads = 2\n" + server_options)
    (directory / "etc" / "zope.ini").write_text(ini)
    return directory / "etc" / "zope.ini"


#: options a paste deployment could not set before they were derived from the schema
OPTIONS = "instance_name = paste-one\nmax_headers = 20\nidle_timeout = 1m\n"


def test_runwsgi_with_txzserver(tmp_path, plone_template, site_id):
    ini = _paste_instance(tmp_path / "paste", plone_template, OPTIONS)
    runwsgi = str(Path(sys.executable).parent / "runwsgi")
    server = ServerProcess(ini.parent / "zope.conf", argv=[runwsgi, str(ini)]).start()
    try:
        # a first page renders Plone's templates: seconds on a busy machine (no latency test)
        page = httpx.get(server.url(f"/{site_id}"), timeout=60)
        assert page.status_code == 200
        assert page.headers["x-txzserver-instance"] == "paste-one"
        with httpx.Client(http1=False, http2=True, timeout=60) as client:
            response = client.get(server.url(f"/{site_id}"))
        assert response.status_code == 200 and response.http_version == "HTTP/2"
        many = {f"x-extra-{n}": "1" for n in range(25)}
        assert httpx.get(server.url(f"/{site_id}"), headers=many, timeout=60).status_code == 431
    finally:
        assert server.stop() == 0
