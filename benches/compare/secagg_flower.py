"""One SecAgg+ round of Flower's own SecAggPlusWorkflow (server) and secaggplus_mod (clients),
driven through a minimal in-process message router instead of Flower's Ray-based simulation
engine. Every client runs in this process, one after the other, as fedprof's in-process round
does. Prints `flower_round_cpu_seconds <best>` (process CPU time) and `flower_round_seconds <best>`
(wall).

    python secagg_flower.py N D NUM_SHARES REPEATS
"""

import copy
import sys
import time
from typing import Iterable

import numpy as np

import flwr.compat.common.recorddict_compat as compat
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod.secure_aggregation.secaggplus_mod import secaggplus_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import SecAggPlusWorkflow
from flwr.serverapp.grid import Grid
from flwr.supercore.task_identity import TaskIdentity


class Router(Grid):
    """Delivers each message to the addressed client's mod stack and returns the replies."""

    def __init__(self, vectors: dict[int, np.ndarray]):
        self.vectors = vectors
        self.contexts = {
            nid: Context(run_id=1, node_id=nid, node_config={}, state=RecordDict(), run_config={})
            for nid in vectors
        }

    def fit(self, msg: Message, ctxt: Context) -> Message:
        params = ndarrays_to_parameters([self.vectors[ctxt.node_id]])
        res = FitRes(status=Status(Code.OK, ""), parameters=params, num_examples=1, metrics={})
        return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)

    def send_and_receive(self, messages: Iterable[Message], *, timeout=None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            nid = msg.metadata.dst_node_id
            # Flower stamps message identities from the process's task identity; play the
            # addressed node while its mods run, and the server otherwise.
            TaskIdentity.node_id = nid
            # The workflow hands every client the same content object and the mod mutates it:
            # copy, as a real transport's serialization would.
            reply = secaggplus_mod(copy.deepcopy(msg), self.contexts[nid], self.fit)
            TaskIdentity.node_id = 0
            replies.append(reply)
        return replies

    # Not used by the workflow.
    def set_run(self, run_id):  # noqa: D102
        raise NotImplementedError

    @property
    def run(self):  # noqa: D102
        raise NotImplementedError

    def create_message(self, *args, **kwargs):  # noqa: D102
        raise NotImplementedError

    def get_node_ids(self):  # noqa: D102
        return list(self.vectors)

    def push_messages(self, messages):  # noqa: D102
        raise NotImplementedError

    def pull_messages(self, message_ids):  # noqa: D102
        raise NotImplementedError


def one_round(n: int, d: int, num_shares: int) -> float:
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    rng = np.random.default_rng(1)
    vectors = {nid: rng.uniform(-1, 1, d).astype(np.float32) for nid in range(1, n + 1)}
    grid = Router(vectors)
    manager = SimpleClientManager()
    for nid in vectors:
        manager.register(GridClientProxy(nid, grid, 1))
    strategy = FedAvg(fraction_fit=1.0, min_fit_clients=n, min_available_clients=n, fraction_evaluate=0.0)
    base = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    context = LegacyContext(base, config=ServerConfig(num_rounds=1), strategy=strategy, client_manager=manager)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({"current_round": 1})
    context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        ndarrays_to_parameters([np.zeros(d, np.float32)]), keep_input=True
    )
    workflow = SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=2)
    start = time.perf_counter()
    cpu_start = time.process_time()
    workflow(grid, context)
    cpu = time.process_time() - cpu_start
    elapsed = time.perf_counter() - start
    # The round must have produced the average of the inputs (quantized).
    out = parameters_to_ndarrays(
        compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    )[0]
    expect = np.mean(np.stack(list(vectors.values())), axis=0)
    err = float(np.max(np.abs(out - expect)))
    if not err < 1e-2:  # Flower quantizes (2^22 levels over [-8, 8], weights up to 1000)
        raise SystemExit(f"Flower round result is off by {err}")
    return elapsed, cpu


def main() -> None:
    n, d, shares, repeats = (int(a) for a in sys.argv[1:5])
    rounds = [one_round(n, d, shares) for _ in range(repeats)]
    print(f"flower_round_cpu_seconds {min(cpu for _, cpu in rounds):.6f}")
    print(f"flower_round_seconds {min(wall for wall, _ in rounds):.6f}")


if __name__ == "__main__":
    main()
