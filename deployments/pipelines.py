"""The flows the deployments run: one per domain, taking its parameters as one Pydantic model.

The model gives the UI a form with descriptions, choices and bounds. Each flow runs the domain's flow body in its
own run (``.fn``, not a subflow), so every task run and artifact belongs to the run the user started. A domain is
imported when its flow runs: each run is a fresh process, and a market run need not import the satellite stack.
Each flow is an attribute of this module named for its domain, the entry point a served run loads it by.
"""

from prefect import Flow, flow

from flows.domains import Domain, domains


def deployment_flow(domain: Domain) -> Flow:
    """The flow a deployment of ``domain`` runs: the parameter model in, the domain's flow body run."""
    params_model = domain.load_params()

    def run(params: params_model = params_model()) -> dict:  # type: ignore[valid-type]
        return domain.load_flow().fn(**params.model_dump())

    run.__name__ = run.__qualname__ = domain.name
    run.__doc__ = domain.summary
    return flow(name=domain.name, description=domain.summary)(run)


PIPELINES: dict[str, Flow] = {name: deployment_flow(domain) for name, domain in domains().items()}
globals().update(PIPELINES)
