from edgewise.errors import EdgewiseError


def offload(model: str) -> None:
    raise EdgewiseError("offload: not built yet")
