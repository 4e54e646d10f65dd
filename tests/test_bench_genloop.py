"""python -m fusedrnn.bench.genloop: the three generation loops give the same tokens and
the table prints (timings are not asserted)."""

from fusedrnn.bench import genloop


def test_genloop_ways_agree_and_print(torch, capsys):
    ways = genloop.loops(torch, vocab=30, embed=6, hidden=12)
    want = ways["torch.nn"](3, 25)
    assert len(want) == 25 and len(set(want)) > 1  # a loop that moves
    assert ways["replace_rnns"](3, 25) == want and ways["numpy"](3, 25) == want
    assert genloop.main(["--steps", "5", "--hidden", "16", "--rounds", "1", "--cpu-time"]) == 0
    out = capsys.readouterr().out
    assert "same tokens checked" in out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["torch.nn", "replace_rnns",
                                                                  "numpy"]
