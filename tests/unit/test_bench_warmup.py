"""The benchmark's first-round warm-up: every server is sent the scenario's whole working set before it
is measured, so whoever goes first does not warm the database for those after it (bench/run.py)."""

from __future__ import annotations

import asyncio

import pytest

from bench.run import Scenario, Warmup


def _cycling(distinct: int, concurrency: int) -> Scenario:
    return Scenario("read", "a read", lambda vu, i: (0, str((vu + i * concurrency) % distinct).encode()),
                    distinct=distinct)


@pytest.mark.parametrize(("distinct", "concurrency"), [(1000, 16), (20_000, 16), (7, 16), (10, 3), (16, 16)])
def test_the_first_pass_sends_every_request_a_user_will_send_and_all_of_them(distinct: int,
                                                                           concurrency: int) -> None:
    scenario = _cycling(distinct, concurrency)
    per_user = scenario.first_pass(concurrency)
    assert per_user is not None
    warmed = {vu: {scenario.pick(vu, i)[1] for i in range(per_user)} for vu in range(concurrency)}
    assert set().union(*warmed.values()) == {str(k).encode() for k in range(distinct)}
    for vu in range(concurrency):  # a measured window of any length repeats what this user warmed
        assert {scenario.pick(vu, i)[1] for i in range(per_user * 3)} == warmed[vu]


def test_a_write_has_no_working_set_to_warm() -> None:
    assert Scenario("write", "a write", lambda vu, i: (0, b"")).first_pass(16) is None


def test_a_first_pass_warm_up_lasts_until_every_user_has_sent_its_share_and_no_user_idles() -> None:
    sent: list[tuple[int, int]] = []

    async def request(vu: int, i: int) -> str | None:
        sent.append((vu, i))
        await asyncio.sleep(0.02 if vu == 0 else 0.001)  # user 0's server is slower
        return None

    asyncio.run(Warmup(3.0, per_user=5).drive(4, request))
    for vu in range(4):
        assert {(vu, i) for i in range(5)} <= set(sent)
    # the others kept the load on until user 0 had sent its five, and it stopped then
    assert all(sum(1 for v, _ in sent if v == vu) > 5 for vu in (1, 2, 3))
    assert sum(1 for v, _ in sent if v == 0) == 5
    assert str(Warmup(3.0)) == "3 s" and "5 per user" in str(Warmup(3.0, per_user=5))
