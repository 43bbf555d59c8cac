"""Whole fields to catalogs: blends from detections, cutouts of a few standard sizes, `sl.fit_many` per
bucket of blends, on Dask workers (or in this process), one table out.

```python
run = sl.catalog.fit_field("field.fits", "detections.fits", "catalog.parquet", workers=2)
```

The same from the command line: `python -m scarlet_like catalog field.fits --detections
detections.fits --output catalog.parquet --workers 2`. Dask (`pip install 'scarlet_like[catalog]'`)
is imported only when a run uses it.
"""

from ._blends import SIZES as SIZES
from ._blends import Blend as Blend
from ._blends import friends_of_friends as friends_of_friends
from ._blends import make_blends as make_blends
from ._field import FieldImage as FieldImage
from ._field import read_detections as read_detections
from ._field import write_field as write_field
from ._partition import FLAGS as FLAGS
from ._run import CatalogRun as CatalogRun
from ._run import fit_field as fit_field

__all__ = [
    "FLAGS",
    "SIZES",
    "Blend",
    "CatalogRun",
    "FieldImage",
    "fit_field",
    "friends_of_friends",
    "make_blends",
    "read_detections",
    "write_field",
]
