"""arc.conf read without ARC's parser (standard library only): `[block]` headers and the
`key = value` lines under them, which is all arkd's clients and the benchmarks ask of it."""


def blocks(text: str) -> dict[str, dict[str, str]]:
    """Each block's options by name, in file order. A key given more than once keeps its first
    value (the options read here take one); surrounding double quotes are dropped."""
    found: dict[str, dict[str, str]] = {}
    options: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            options = found.setdefault(line[1:-1].strip(), {})
        elif options is not None and "=" in line and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            options.setdefault(key, value.strip('"'))
    return found


def option(text: str, block: str, key: str) -> str | None:
    """One option's value, None if the block or the key is missing or the value is empty."""
    return blocks(text).get(block, {}).get(key) or None
