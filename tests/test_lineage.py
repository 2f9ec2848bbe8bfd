"""Members of a checkpoint scheduler's population, without Ray (trainables.lineage, protocol.run_member): an exploit
continues from the donor's state with the new config's settings as a new generation, the superseded generation says
so, pauses are not ends, and only the optimiser's settings and K may change."""

import copy
import dataclasses

import pytest

from analysis.results import final_rows, load_metrics
from trainables.errors import ConfigError
from trainables.grid_point import GridPoint
from trainables.layout import SweepLayout
from trainables.lineage import Lineage, check_mutations
from trainables.protocol import TrialRequest, run_member

POINT = {"seed": 0, "unroll_steps": 2}  # mog smoke: reports at steps 0, 20 and 40


def request(tmp_path, member, point=POINT, **overrides):
    return dataclasses.replace(
        TrialRequest("mog", "smoke", "pbt", SweepLayout(str(tmp_path)), GridPoint.from_tune(point), overrides),
        tune_trial_id=member,
    )


class Reports:
    """The checkpoints a member reported, by step; `stop_after` stops it there as Tune does (SystemExit)."""

    def __init__(self, stop_after=None):
        self.checkpoints, self.summaries, self.stop_after = {}, [], stop_after

    def __call__(self, summary, checkpoint):
        self.summaries.append(summary)
        self.checkpoints[summary["step"]] = copy.deepcopy(checkpoint)  # the state's tensors are the live models'
        if summary["step"] == self.stop_after:
            raise SystemExit  # how Tune pauses or stops a function trainable at a report

    def at(self, step):
        """The checkpoint of `step` as Tune hands it over: read afresh (a loaded optimizer adopts its tensors)."""
        return copy.deepcopy(self.checkpoints[step])


def rows(tmp_path):
    return {(r.trial_id, r.step): r for r in load_metrics(str(tmp_path)).itertuples()}


def test_an_exploit_is_a_new_generation_from_the_donors_state_with_the_new_settings(tmp_path):
    donor = Reports()
    run_member(request(tmp_path, "A"), "cpu", donor)
    assert sorted(donor.checkpoints) == [0, 20, 40]
    paused = Reports(stop_after=20)
    with pytest.raises(SystemExit):
        run_member(request(tmp_path, "B"), "cpu", paused)
    assert rows(tmp_path)[("member=B,generation=0", 20)].status == "paused"  # a pause, not a stop

    # B exploits A at step 20 with a mutated learning rate; C does with A's own config.
    exploited = Reports()
    run_member(request(tmp_path, "B", g_lr=2e-3), "cpu", exploited, checkpoint=donor.at(20))
    same = Reports()
    run_member(request(tmp_path, "C"), "cpu", same, checkpoint=donor.at(20))

    found = rows(tmp_path)
    assert found[("member=B,generation=0", 20)].status == "exploited"
    new = [key for key in found if key[0] == "member=B,generation=1"]
    assert new == [("member=B,generation=1", 40)]  # from the parent's step plus one report, no repeat of 20
    first = found[new[0]]
    assert (first.generation, first.parent, first.parent_step) == (1, "member=A,generation=0", 20)
    # The donor's state, continued: with A's settings C repeats A's step 40 exactly; with B's it differs.
    c_first = found[("member=C,generation=1", 40)]
    assert c_first.g_loss == found[("member=A,generation=0", 40)].g_loss
    assert first.g_loss != found[("member=A,generation=0", 40)].g_loss
    # The mutated learning rate is the one training used, not the donor's restored with its optimizer state.
    state = exploited.checkpoints[40]
    assert state["trainer"]["g_optimizer"]["param_groups"][0]["lr"] == 2e-3
    assert donor.checkpoints[40]["trainer"]["g_optimizer"]["param_groups"][0]["lr"] != 2e-3
    assert Lineage.from_dict(state["lineage"]) == Lineage("B", 1, "member=A,generation=0", 20)
    # The analysis takes each member's latest generation, never the superseded one, for a final row.
    final = set(final_rows(load_metrics(str(tmp_path)))["trial_id"])
    assert final == {"member=A,generation=0", "member=B,generation=1", "member=C,generation=1"}  # C: 1 exploit


def test_an_exploit_after_the_last_step_leaves_the_finished_member_as_it_was(tmp_path):
    # Synchronous PBT decides at every result, the last one too: found in a full examples/pbt.py run, where two of
    # eight members were exploited at step 7,000 and so ended with no finished row at all.
    donor, member = Reports(), Reports()
    run_member(request(tmp_path, "A"), "cpu", donor)
    run_member(request(tmp_path, "B", {**POINT, "seed": 1}), "cpu", member)
    before = rows(tmp_path)
    late = Reports()  # PBT's exploit hands B the donor's whole config, its seed included, mutated
    run_member(request(tmp_path, "B", g_lr=2e-3), "cpu", late, checkpoint=donor.at(40))
    assert late.summaries == []
    after = rows(tmp_path)
    assert after.keys() == before.keys()  # no new generation
    assert after[("member=B,generation=0", 40)].status == "finished"
    final = set(final_rows(load_metrics(str(tmp_path)))["trial_id"])
    assert final == {"member=A,generation=0", "member=B,generation=0"}


def test_a_member_resumes_its_own_checkpoint_and_a_finished_one_reports_nothing(tmp_path):
    paused = Reports(stop_after=20)
    with pytest.raises(SystemExit):
        run_member(request(tmp_path, "A"), "cpu", paused)
    resumed = Reports()
    run_member(request(tmp_path, "A"), "cpu", resumed, checkpoint=paused.at(20))
    assert [s["step"] for s in resumed.summaries] == [40]
    found = rows(tmp_path)
    assert {key[0] for key in found} == {"member=A,generation=0"}  # one generation: a pause is no exploit
    again = Reports()
    run_member(request(tmp_path, "A"), "cpu", again, checkpoint=resumed.at(40))
    assert again.summaries == []
    # Without Tune's checkpoint (pruned, or a crash before it was kept) the member's own state file resumes it.
    crashed = tmp_path / "crashed"
    with pytest.raises(SystemExit):
        run_member(request(crashed, "A"), "cpu", Reports(stop_after=20))
    from_file = Reports()
    run_member(request(crashed, "A"), "cpu", from_file)
    assert [s["step"] for s in from_file.summaries] == [40]


def test_a_scheduler_may_change_only_the_optimisers_settings_and_k(tmp_path):
    donor = Reports()
    run_member(request(tmp_path, "A"), "cpu", donor)
    with pytest.raises(ConfigError, match="the scheduler changed batch_size: a checkpoint scheduler may change only"):
        run_member(request(tmp_path, "B", batch_size=32), "cpu", Reports(), checkpoint=donor.at(20))
    for allowed in ({"g_lr": [1e-4, 1e-3]}, {"beta1": [0.5, 0.9], "unroll_steps": [0, 5, 10]}):
        check_mutations(allowed)
    with pytest.raises(ConfigError, match="cannot mutate batch_size, seed: a checkpoint scheduler may change only"):
        check_mutations({"seed": [0, 1], "batch_size": [32, 64], "g_lr": [1e-3]})
    with pytest.raises(ConfigError, match="unroll_steps mutates only as a list of integers"):
        check_mutations({"unroll_steps": (0.5, 5.0)})


def test_packed_seeds_are_refused_with_checkpoints(tmp_path):
    packed = dataclasses.replace(
        request(tmp_path, "A"), point=GridPoint.from_tune({"seeds": [0, 1], "unroll_steps": 2})
    )
    with pytest.raises(ConfigError, match="without seed packing"):
        run_member(packed, "cpu", Reports())


def test_the_report_shows_every_generation_its_origin_and_values_with_a_lineage_figure(tmp_path):
    from analysis.report import build_report

    donor = Reports()
    run_member(request(tmp_path, "A"), "cpu", donor)
    with pytest.raises(SystemExit):
        run_member(request(tmp_path, "B"), "cpu", Reports(stop_after=20))
    mutated = request(tmp_path, "B", point={"seed": 0, "unroll_steps": 5}, d_lr=3e-4)  # K as PBT mutates it
    run_member(mutated, "cpu", Reports(), checkpoint=donor.at(20))
    report = build_report(str(tmp_path), tmp_path / "report")
    assert "## Population: 2 members, 1 exploit(s)" in report.text
    line = next(x for x in report.text.splitlines() if x.startswith("| member=B,generation=1 "))
    assert "| member=A,generation=0 at step 20 | 40-40 |" in line and "d_lr=0.0003" in line
    assert "unroll_steps=5 | finished |" in line
    assert "| member=B,generation=0 | its own start | 0-20 |" in report.text and "| exploited |" in report.text
    assert (tmp_path / "report" / "lineages.png").read_bytes()[:4] == b"\x89PNG"
