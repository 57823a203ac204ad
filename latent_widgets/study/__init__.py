"""The study this package grew from: its claims, its defaults and its figures.

Kept apart from the library core (projection, map_quality, metrics, ...),
which never imports it: the core is general, this subpackage holds what one
particular study chose (samples 38 and 138, 12 steps) and stated.

- :mod:`latent_widgets.study.findings`: the study's statements beside the
  measured numbers, for CamVid (:func:`study_findings`,
  :func:`findings_markdown`, :func:`is_camvid`);
- :mod:`latent_widgets.study.figures`: :data:`STUDY_PATH`,
  :data:`STUDY_STEPS`, :func:`default_endpoints` (where the figures and the
  explorer open) and :func:`write_study_figures`.

Examples
--------
>>> from latent_widgets.study import STUDY_PATH, Finding, findings_markdown
>>> STUDY_PATH
(38, 138)
>>> print(findings_markdown([Finding("PCA x range", "-9.3..10.3", "-8.1..9.9")]).splitlines()[-1])
| PCA x range | -9.3..10.3 | -8.1..9.9 |
"""

from __future__ import annotations

from .figures import STUDY_METHODS, STUDY_PATH, STUDY_STEPS, default_endpoints, write_study_figures
from .findings import STUDY, Finding, findings_markdown, is_camvid, study_findings

__all__ = [
    "STUDY",
    "STUDY_METHODS",
    "STUDY_PATH",
    "STUDY_STEPS",
    "Finding",
    "default_endpoints",
    "findings_markdown",
    "is_camvid",
    "study_findings",
    "write_study_figures",
]
