from edgewise.errors import EdgewiseError


def devices() -> None:
    raise EdgewiseError("devices: not built yet")


def clusters() -> None:
    raise EdgewiseError("clusters: not built yet")


def profile() -> None:
    raise EdgewiseError("profile: not built yet")
