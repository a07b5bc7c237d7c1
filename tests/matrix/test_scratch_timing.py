import time
from tests.flows import network, referred_case

async def test_timing(factory):
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    out = []
    for q in ["query($id: ID!) { node(id: $id) { id } }",
              "query($id: ID!) { node(id: $id) { id ... on Referral { survivor { identity { legalName } } } } }",
              "query($id: ID!) { node(id: $id) { id ... on Referral { sessions { edges { node { id notes } } } goals { id } milestones { id } safeguardingConcerns { level } } } }",
              ]:
        t2 = time.perf_counter()
        for _ in range(40):
            await factory.gql(net.token("coordinator"), q, {"id": case.referral["id"]})
        t3 = time.perf_counter()
        out.append(f"{(t3-t2)/40*1000:.1f}ms")
    raise AssertionError(" ".join(out))
