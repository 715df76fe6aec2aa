"""`pyresnet eval DIR`: top-1 and top-5 accuracy over a labelled folder, for users who have real weights and data.

DIR is ImageFolder-style: one sub-folder per class, holding that class's images. A sub-folder names its class by
- its index, 0 to 999 (`281/`), or
- its WordNet id (`n02123045/`), when DIR holds the synset list ImageNet ships (`LOC_synset_mapping.txt`, lines
  "n01440764 tench, Tinca tinca", or `synset_words.txt` / `wnids.txt` with the id first on each line), in class
  order, or
- its label exactly as in pyresnet/data/imagenet_classes.txt (`tabby/`).
Images are read as `run` reads them (reader threads, batches, bounded memory); unreadable ones are counted and
named, never fatal.
"""

from __future__ import annotations

import re
import sys
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UserError
from ..images import IMAGE_SUFFIXES
from ..labels import labels
from ..pipeline import classify
from ..progress import Progress
from ..safeio import read_regular

SYNSET_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "wnids.txt")
WNID = re.compile(r"^n[0-9]{8}$")  # ASCII digits only: \d would take any Unicode digit


def synsets(root: Path) -> dict[str, int] | None:
    """WordNet id -> class index from the synset list in `root`, if there is one."""
    for name in SYNSET_FILES:
        p = root / name
        if p.is_file():
            text = read_regular(p, 1 << 20, UserError, "synset list").decode("utf-8", "replace")
            ids = [line.split()[0] for line in text.splitlines() if line.strip()]
            if len(ids) != 1000 or not all(WNID.match(i) for i in ids):
                raise UserError(f"{p} must list the 1000 ImageNet WordNet ids (n########), one per line")
            return {wnid: i for i, wnid in enumerate(ids)}
    return None


def classes(root: Path) -> list[tuple[Path, int]]:
    """(sub-folder, class index) for every class folder of `root`; a folder whose name is no class is an error."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"eval needs a directory of class folders, and {root} is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise UserError(f"{root} has no class sub-folders (ImageFolder layout: one folder per class, named by class "
                        "index 0-999, WordNet id or label)")
    by_wnid = synsets(root)
    by_label = {name: i for i, name in enumerate(labels())}
    out = []
    for f in folders:
        n = f.name
        if n.isascii() and n.isdigit() and int(n) < 1000:  # '²' and '٣' are digits to str.isdigit(), not to int()
            out.append((f, int(n)))
        elif WNID.match(n):
            if by_wnid is None:
                raise UserError(f"class folder '{n}' is a WordNet id, but {root} has no synset list "
                                f"({' or '.join(SYNSET_FILES)}) to map it to a class index")
            if n not in by_wnid:
                raise UserError(f"class folder '{n}' is not one of the 1000 ImageNet synsets")
            out.append((f, by_wnid[n]))
        elif n in by_label:
            out.append((f, by_label[n]))
        else:
            raise UserError(f"class folder '{n}' names no class: use the class index (0-999), the WordNet id or the "
                            "label of pyresnet/data/imagenet_classes.txt")
    return out


def evaluate(model: Any, root: Path, batch: int = 1, readers: int = 1, topk: int = 5, progress: bool = True,
             say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Top-1 and top-k accuracy of `model` (a pyresnet.Model) over the labelled folder `root`."""
    labelled = [(p, c) for folder, c in classes(root) for p in sorted(folder.iterdir())
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not labelled:
        raise UserError(f"the class folders of {root} hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    truth = {p: c for p, c in labelled}
    hits1 = hitsk = done = 0
    unreadable: list[str] = []
    per_class: dict[int, list[int]] = {}
    bar = Progress(len(labelled), "eval", unit="images", enabled=progress)
    with closing(classify(model, [p for p, _ in labelled], batch, readers)) as stream:
        for b in stream:
            for item in b.failed:
                unreadable.append(str(item.path))
                bar.clear()
                say(f"pyresnet: error: {item.error} (counted as unreadable)")
                bar.advance()
            if b.logits is None:
                continue
            for item, y in zip(b.good, b.logits):
                c = truth[item.path]
                top = np.argsort(-y, kind="stable")[:topk]
                hits1 += int(top[0] == c)
                hitsk += int(c in top)
                per_class.setdefault(c, [0, 0])
                per_class[c][0] += int(top[0] == c)
                per_class[c][1] += 1
                done += 1
            bar.advance(len(b.good))
    bar.close()
    if done == 0:
        raise UserError(f"none of the {len(labelled)} images under {root} could be read")
    return {"images": len(labelled), "evaluated": done, "unreadable": unreadable, "classes": len(per_class),
            "top1": hits1 / done, f"top{topk}": hitsk / done, "topk": topk,
            "per_class_top1": {str(c): h / n for c, (h, n) in sorted(per_class.items())}}
