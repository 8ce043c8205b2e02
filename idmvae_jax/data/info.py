"""What a prepared dataset holds: per-view kinds and shapes, label spaces, split sizes."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

VIEW_KINDS = ("image", "vector", "caption", "latent")
_KIND_DTYPES = {"image": "uint8", "vector": "float32", "caption": "int32", "latent": "float32"}


@dataclasses.dataclass(frozen=True)
class ViewInfo:
    """One modality.

    Attributes:
      kind: 'image' (uint8 H×W×C), 'vector' (float32 D), 'caption' (int32 L tokens) or 'latent'
        (float32, e.g. 4×32×32 SD-VAE codes).
      shape: per-example shape, e.g. (32, 32, 3), (100,) or (32,).
      dtype: numpy dtype name of the batch arrays ('uint8', 'float32', 'int32').
      vocab_size: vocabulary size for 'caption' views, else None.
      has_private_label: whether `y_private[:, m]` is a real label for this view (else it is -1).
    """

    kind: str
    shape: tuple[int, ...]
    dtype: str
    vocab_size: int | None = None
    has_private_label: bool = False

    def __post_init__(self):
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"view kind {self.kind!r} is not one of {VIEW_KINDS}")
        if self.dtype != _KIND_DTYPES[self.kind]:
            raise ValueError(f"a {self.kind} view has dtype {_KIND_DTYPES[self.kind]}, not {self.dtype}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset, as the models and metrics need it.

    Attributes:
      name: the config name ('polymnist_quadrant_embedded', 'npz', ...).
      views: one ViewInfo per modality, in batch order (`batch["x"][m]`).
      num_shared_classes: classes of `y_shared` (labels are 0..num_shared_classes-1).
      num_private_classes: classes of `y_private`, None when the data has no private label.
      splits: example count per split ('train', 'val' where present, 'test').
      shared_label_name: what `y_shared` means, e.g. 'digit'.
      private_label_name: what `y_private` means, e.g. 'quadrant'; None without private labels.
      extra_keys: further per-example arrays in every batch, e.g. ('mnist_index',) of shape (b, M).
    """

    name: str
    views: tuple[ViewInfo, ...]
    num_shared_classes: int
    num_private_classes: int | None
    splits: dict[str, int]
    shared_label_name: str
    private_label_name: str | None = None
    extra_keys: tuple[str, ...] = ()

    @property
    def num_views(self) -> int:
        return len(self.views)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DatasetInfo":
        values = dict(values)
        values["views"] = tuple(ViewInfo(**v) for v in values["views"])
        values["splits"] = {k: int(v) for k, v in values["splits"].items()}
        values["extra_keys"] = tuple(values.get("extra_keys", ()))
        return cls(**values)

    def select_views(self, num_views: int) -> "DatasetInfo":
        """The same dataset restricted to its first `num_views` views (0 = all)."""
        if num_views == 0 or num_views == self.num_views:
            return self
        if num_views > self.num_views:
            raise ValueError(
                f"data.num_views={num_views} but {self.name} has only {self.num_views} views; "
                f"set data.num_views to at most {self.num_views} (or 0 for all).")
        return dataclasses.replace(self, views=self.views[:num_views])
