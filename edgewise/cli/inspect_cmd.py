from edgewise.errors import EdgewiseError


def inspect(model: str) -> None:
    raise EdgewiseError("inspect: not built yet")
