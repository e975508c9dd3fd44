"""The Zope side of live notifications (txzserver.plone), without the WebSocket server.

A script (tests/support/plone_events_script.py) runs inside Zope on a copy of the Plone
template: it registers a recording IEventPublisher, installs the profiles, performs one content
operation per transaction and dumps what was published. A real txzserver then serves the same
instance to check the toast script, its bundle and the @@txzserver-principal view.
"""

import re
from datetime import datetime

import httpx
import pytest

from tests.support.instance import ADMIN, ROOT, SITE_ID, run_site_script
from tests.support.server import ServerProcess

SCRIPT = ROOT / "tests" / "support" / "plone_events_script.py"
PUBLIC_FIELDS = {"type", "path", "uid", "url", "title", "portal_type", "review_state", "actor",
                 "time", "message"}
JS_PATH = f"/{SITE_ID}/++plone++txzserver/txzserver-toast.js"
FOLDER = f"/{SITE_ID}/folder"


@pytest.fixture(scope="module")
def events_instance(tmp_path_factory, plone_template):
    conf, results = run_site_script(tmp_path_factory.mktemp("plone-events"), plone_template,
                                    SCRIPT, SITE_ID)
    return {"conf": conf, "results": results}


@pytest.fixture(scope="module")
def results(events_instance):
    return events_instance["results"]


@pytest.fixture(scope="module")
def installed_server(events_instance):
    """A server on the instance the script left behind (profiles installed)."""
    server = ServerProcess(events_instance["conf"]).start()
    yield server
    server.stop()


def only_batch(results, label):
    batches = results[label]
    assert len(batches) == 1, f"{label}: expected one publish() call, got {batches}"
    return batches[0]


def only_event(results, label):
    batch = only_batch(results, label)
    assert len(batch) == 1, f"{label}: expected one event, got {batch}"
    return batch[0]


def assert_private_guard(guard):
    assert "Manager" in guard and "user:admin" in guard  # the owner, as the catalog indexes it
    assert "Anonymous" not in guard and "Authenticated" not in guard


def test_created_event_has_every_field(results):
    event = only_event(results, "create")
    assert set(event) == PUBLIC_FIELDS | {"guard"}
    assert event["type"] == "created"
    assert event["path"] == f"{FOLDER}/doc"
    assert re.fullmatch(r"[0-9a-f]{32}", event["uid"])
    assert event["url"].endswith(f"{FOLDER}/doc")
    assert event["title"] == "A document"
    assert event["portal_type"] == "Document"
    assert event["review_state"] == "private"
    assert event["actor"] == "admin"
    assert event["message"] == ""
    assert datetime.fromisoformat(event["time"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert_private_guard(event["guard"])


def test_repeated_modifications_collapse_into_one_event(results):
    event = only_event(results, "edit_twice")
    assert event["type"] == "modified"
    assert event["path"] == f"{FOLDER}/doc"
    assert event["title"] == "A document, edited"


def test_modification_of_a_new_object_refreshes_the_created_event(results):
    event = only_event(results, "create_and_edit")
    assert event["type"] == "created"
    assert event["title"] == "Second, edited before commit"


def test_rename_and_move_are_modified_at_the_new_path(results):
    uid = only_event(results, "create")["uid"]
    renamed = only_event(results, "rename")
    assert (renamed["type"], renamed["path"], renamed["uid"]) == ("modified", f"{FOLDER}/doc-renamed", uid)
    assert renamed["message"] == f"moved from {FOLDER}/doc"
    moved = only_event(results, "move")
    assert moved["path"] == f"/{SITE_ID}/other/doc-renamed"
    assert moved["message"] == f"moved from {FOLDER}/doc-renamed"
    back = only_event(results, "move_back")
    assert back["message"] == f"moved from /{SITE_ID}/other/doc-renamed"


def test_submit_gives_transition_then_rule_notification(results):
    transition, notification = only_batch(results, "submit")
    assert transition["type"] == "transition"
    assert transition["message"] == "submit"
    assert transition["review_state"] == "pending"
    # pending documents are visible to Reviewers, so the local reviewer is in the guard
    assert {"Reviewer", "user:localreviewer", "Manager"} <= set(transition["guard"])
    assert "Anonymous" not in transition["guard"]

    assert notification["type"] == "notification"
    assert notification["path"] == f"{FOLDER}/doc-renamed"
    assert notification["message"] == '"A document, edited" was submitted for review by admin'
    assert set(notification["guard"]) == {"Reviewer", "user:localreviewer"}


def test_transition_guard_is_union_of_before_and_after(results):
    published = only_event(results, "publish")
    assert published["review_state"] == "published"
    assert "Anonymous" in published["guard"]
    assert "user:localreviewer" in published["guard"]  # could see it while pending
    retracted = only_event(results, "retract")
    assert retracted["review_state"] == "private"
    assert "Anonymous" in retracted["guard"]  # anonymous loses access: tell them it left


def test_abort_and_failed_commit_publish_nothing(results):
    assert results["abort"] == []
    assert results["failed_commit"] == []


def test_rolled_back_savepoint_drops_its_events(results):
    event = only_event(results, "savepoint_rollback")
    assert (event["type"], event["path"]) == ("created", f"{FOLDER}/kept")


def test_removed_uses_the_guard_from_before_removal(results):
    event = only_event(results, "delete")
    assert event["type"] == "removed"
    assert event["path"] == f"{FOLDER}/doc-renamed"
    assert event["uid"] == only_event(results, "create")["uid"]
    assert event["review_state"] == "private"
    assert_private_guard(event["guard"])
    assert [(e["type"], e["path"]) for e in only_batch(results, "delete_two")] == [
        ("removed", f"{FOLDER}/kept"), ("removed", f"{FOLDER}/doc2")]


def test_concurrent_transactions_publish_their_own_events_in_order(results):
    batches = results["threads"]
    assert len(batches) == 4 * 20
    for batch in batches:
        assert len({e["path"] for e in batch}) == 1
        assert [e["message"] for e in batch] == ["0", "1", "2"]


def test_profiles_install_bundle_and_example_rule(results):
    info = results["setup_info"]
    assert info["registry_js"] == "++plone++txzserver/txzserver-toast.js"
    assert "txzserver-notify-reviewers" in info["rules"]


def test_toast_js_is_served(plone_server):
    response = httpx.get(plone_server.url(JS_PATH), timeout=60)
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "txzserver-toasts" in response.text and "txzserver-toast" in response.text


def test_front_page_loads_toast_script_for_members(installed_server):
    page = httpx.get(installed_server.url(f"/{SITE_ID}"), auth=ADMIN, timeout=60)
    assert page.status_code == 200
    assert re.search(r'<script[^>]+src="[^"]*\+\+plone\+\+txzserver/txzserver-toast\.js', page.text)
    anonymous = httpx.get(installed_server.url(f"/{SITE_ID}"), timeout=60)
    assert anonymous.status_code == 200
    assert "txzserver-toast.js" not in anonymous.text  # see profiles/default/registry.xml


def test_principal_view(installed_server):
    url = installed_server.url(f"/{SITE_ID}/@@txzserver-principal")
    anonymous = httpx.get(url, timeout=60)
    assert anonymous.status_code == 200
    assert anonymous.headers["content-type"].startswith("application/json")
    assert anonymous.json() == {"userid": None, "tokens": ["Anonymous"], "site_path": f"/{SITE_ID}",
                                "site_url": installed_server.url(f"/{SITE_ID}")}
    admin = httpx.get(url, auth=ADMIN, timeout=60).json()
    assert admin["userid"] == "admin"
    assert {"Manager", "Authenticated", "Anonymous", "user:admin"} <= set(admin["tokens"])
    assert admin["tokens"] == sorted(admin["tokens"])
    reviewer = httpx.get(url, auth=("localreviewer", "secret-secret-1"), timeout=60).json()
    assert reviewer["userid"] == "localreviewer"
    assert "user:localreviewer" in reviewer["tokens"] and "Reviewer" not in reviewer["tokens"]


def test_copy_is_created_with_a_new_uid(results):
    event = only_event(results, "copy")
    assert (event["type"], event["path"]) == ("created", f"/{SITE_ID}/other/kept")
    assert event["uid"] and event["uid"] != only_event(results, "savepoint_rollback")["uid"]


def test_one_event_per_folder_operation_not_per_child(results):
    assert [(e["type"], e["path"]) for e in only_batch(results, "create_tree")] == [
        ("created", f"/{SITE_ID}/sub"), ("created", f"/{SITE_ID}/sub/child")]
    renamed = only_event(results, "rename_tree")
    assert (renamed["path"], renamed["message"]) == (f"/{SITE_ID}/sub2", f"moved from /{SITE_ID}/sub")
    removed = only_event(results, "delete_tree")
    assert (removed["type"], removed["path"]) == ("removed", f"/{SITE_ID}/sub2")


def test_rule_action_forms(installed_server):
    rule = installed_server.url(f"/{SITE_ID}/++rule++txzserver-notify-reviewers")
    add = httpx.get(f"{rule}/+action/txzserver.actions.Notification", auth=ADMIN, timeout=60)
    assert add.status_code == 200
    for name in ("message", "target_roles", "target_groups"):
        assert f'name="form.widgets.{name}' in add.text
    elements = httpx.get(f"{rule}/@@manage-elements", auth=ADMIN, timeout=60)
    assert elements.status_code == 200
    assert "Notify Reviewer: &#34;${title}&#34; was submitted" in elements.text or \
        'Notify Reviewer: "${title}" was submitted' in elements.text


def test_event_queued_while_committing_is_published(results):
    assert only_event(results, "before_commit_hook")["message"] == "late"
