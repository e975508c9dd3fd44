"""txzserver.zope.compilelock: compile() serialized on the Pythons with gh-95185."""

import ast
import builtins
import sys
import threading

from txzserver.zope import compilelock


def test_affected_versions_are_3_11_0_to_3_11_4():
    assert compilelock.AFFECTED == ((3, 11, 0) <= sys.version_info[:3] < (3, 11, 5))


def test_serialized_compile_holds_the_lock_and_compiles_like_the_builtin():
    source = "x = [i * 2 for i in range(3)]"
    code = compilelock.serialized_compile(source, "<probe>", "exec")
    namespace = {}
    exec(code, namespace)
    assert namespace["x"] == [0, 2, 4]
    tree = compilelock.serialized_compile(source, "<probe>", "exec", ast.PyCF_ONLY_AST)
    assert isinstance(tree, ast.Module)
    # a second thread waits while one holds the lock
    entered = threading.Event()
    with compilelock._lock:
        worker = threading.Thread(target=lambda: (compilelock.serialized_compile(source, "<t>", "exec"),
                                                  entered.set()))
        worker.start()
        assert not entered.wait(0.2)
    assert entered.wait(5)
    worker.join()


def test_apply_installs_it_as_the_builtin_so_ast_parse_uses_it(monkeypatch):
    monkeypatch.setattr(builtins, "compile", compilelock._original)
    assert compilelock.apply(force=True)
    assert builtins.compile is compilelock.serialized_compile
    with compilelock._lock:  # ast.parse looks compile up in the builtins at call time
        done = threading.Event()
        threading.Thread(target=lambda: (ast.parse("a = 1"), done.set())).start()
        assert not done.wait(0.2)
    assert done.wait(5)


def test_apply_leaves_a_fixed_python_alone(monkeypatch):
    monkeypatch.setattr(builtins, "compile", compilelock._original)
    monkeypatch.setattr(compilelock, "AFFECTED", False)
    assert not compilelock.apply()
    assert builtins.compile is compilelock._original
