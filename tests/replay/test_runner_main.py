"""The replay runner imports a flow script run as ``python flow.py`` under another name; its
classes and functions must be ``__main__``'s again, or whatever names them by module (a pickle
a task writes, a pickle the recorded run wrote) differs from the recording."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import collections
    import enum
    import pickle
    import sys
    from dataclasses import dataclass


    class Kind(enum.Enum):
        A = "a"


    @dataclass
    class Model:
        mean: float

        @dataclass
        class Inner:
            n: int


    def shout(text):
        return text.upper()


    def late_class():
        return collections.namedtuple("Late", "x")(1)


    if __name__ == "__main__":
        with open(sys.argv[1], "wb") as fh:
            pickle.dump((Model(2.5), Model.Inner(3), Kind.A, shout), fh, protocol=4)
        open(sys.argv[2], "w").write("main part ran")
''')

CHECK = textwrap.dedent('''
    import pickle, sys
    from reproflow.replay import _runner
    mod = _runner._load_entry_module({"entry_file": sys.argv[1]})
    recorded = open(sys.argv[2], "rb").read()
    again = pickle.dumps((mod.Model(2.5), mod.Model.Inner(3), mod.Kind.A, mod.shout), protocol=4)
    model, inner, kind, fn = pickle.loads(recorded)
    assert model == mod.Model(2.5) and inner == mod.Model.Inner(3) and kind is mod.Kind.A and fn is mod.shout
    print(again == recorded, type(mod.late_class()).__module__)
''')


def test_a_script_s_pickles_are_the_same_bytes_in_the_replay(tmp_path: Path) -> None:
    """A dataclass (and one nested in it), an enum member and a function of the script pickle
    to the bytes ``python flow.py`` wrote; the recorded pickle loads; a class made later (a
    namedtuple a task builds) is ``__main__``'s too; the script's main part did not run."""
    flow = tmp_path / "flow.py"
    flow.write_text(SCRIPT)
    recorded, marker = tmp_path / "recorded.pkl", tmp_path / "main-ran.txt"
    subprocess.run([sys.executable, str(flow), str(recorded), str(marker)], check=True, cwd=tmp_path)
    marker.unlink()
    proc = subprocess.run([sys.executable, "-c", CHECK, str(flow), str(recorded)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "__main__"]
    assert not marker.exists()
