from edgewise.errors import EdgewiseError


def plan(model: str) -> None:
    raise EdgewiseError("plan: not built yet")


def simulate(plan: str) -> None:
    raise EdgewiseError("simulate: not built yet")
