"""The Infor side's Dagster definitions: the shared extract assets every integration reads."""

import dagster as dg

from .assets import infor_extracts

defs = dg.Definitions(assets=infor_extracts)
