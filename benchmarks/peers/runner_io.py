"""What every peer runner shares: its two folder arguments and the one JSON line it prints (its times from the
interpreter's start, its values, and the torch it ran on)."""
import argparse
import json
import time


def folders(doc: str, parser_options=()) -> argparse.Namespace:
    """The runner's arguments: GENERATED, REFERENCE and ``parser_options`` (``(flag, keywords)`` pairs)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("generated")
    parser.add_argument("reference")
    for flag, keywords in parser_options:
        parser.add_argument(flag, **keywords)
    return parser.parse_args()


def report(start: float, imported: float, built: float | None, values: dict, **extra) -> None:
    """Print the JSON line ``compare_peers.py`` reads: ``import_s`` (start to the package imported), ``model_s``
    (building the model, None where the evaluation does it), ``eval_s`` (the rest, to now), the values and the
    torch version and thread count."""
    import torch

    done = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "model_s": None if built is None else built - imported,
                      "eval_s": done - (imported if built is None else built), "values": values,
                      "torch": torch.__version__, "threads": torch.get_num_threads(), **extra}))
