from edgewise.errors import EdgewiseError


def demo() -> None:
    raise EdgewiseError("demo: not built yet")
