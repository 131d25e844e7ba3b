"""JSON schema (draft 2020-12) of a rubric file."""

from .model import PART_KINDS

_ID = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
# A notebook cell's grade id: ours, or the one nbgrader gives a cell by default ("cell-1a2b3c4d"),
# so an exam written in nbgrader needs no renaming.
_CELL = {"type": "string", "pattern": "^([a-z][a-z0-9_]*|cell-[0-9a-f]+)$"}
_POINTS = {"type": "number", "minimum": 0}


def _bands(bound_key: str) -> dict:
    band = {
        "type": "object",
        "required": [bound_key, "points"],
        "additionalProperties": False,
        "properties": {bound_key: {"type": "number"}, "points": _POINTS},
    }
    return {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"enum": ["tiny", "full"]},
        "additionalProperties": {"type": "array", "minItems": 1, "items": band},
    }


def _part(kind: str, required: list[str], extra: dict) -> dict:
    return {
        "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
        "then": {
            "required": ["id", "kind", "title", *required],
            "additionalProperties": False,
            "properties": {"id": _ID, "kind": {"const": kind}, "title": {"type": "string"}, **extra},
        },
    }


INQUIRY = {
    "type": "object",
    "required": ["metric", "baseline", "checks", "variables"],
    "additionalProperties": False,
    "properties": {
        "metric": {"type": "string"},                  # the logged metric the claims are about
        # per profile, the configuration every student starts from
        "baseline": {"type": "object", "minProperties": 1, "propertyNames": {"enum": ["tiny", "full"]},
                     "additionalProperties": {"type": "object", "minProperties": 1}},
        "checks": {"type": "object", "minProperties": 1,
                   "propertyNames": {"enum": ["one_variable", "names_variable", "states_hypothesis", "numbers_match",
                                              "direction_matches", "mechanism", "variance",
                                              "better_config"]},
                   "additionalProperties": _POINTS},
        "tolerance": {"type": "number", "minimum": 0},   # quoted vs measured, absolute, metric units
        "variables": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["names", "mechanisms"], "additionalProperties": False,
            "properties": {"names": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                           "mechanisms": {"type": "array", "minItems": 1, "items": {"type": "string"}}}}},
    },
}

# Efficiency of reduced-precision exports, generic over assignments: what each measure compares
# (see autograder/grading/efficiency.py); lower is better for every one, so bands are `at_most`.
EFFICIENCY_MEASURES = ("accuracy_drop", "auc_drop", "size_ratio", "latency_b1_ratio", "latency_b32_ratio")
_PT2 = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}\\.pt2$"}
EFFICIENCY = {
    # precision name -> exported program, each compared with the student's fp32 program
    "programs": {"type": "object", "minProperties": 1, "propertyNames": _ID, "additionalProperties": _PT2},
    "fp32": _PT2,                                                   # default model.pt2
    # the reference's fp32 model, built by trusted course code: "autograder.<module>:<function>(profile)"
    "baseline": {"type": "string", "pattern": "^autograder(\\.[a-z_][a-z0-9_]*)+:[a-z_][a-z0-9_]*$"},
    "positive_class": {"type": "integer", "minimum": 0},            # AUC of this class against the rest
    "measures": {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(EFFICIENCY_MEASURES)},
                 "additionalProperties": {"type": "object", "required": ["points", "bands"], "additionalProperties": False,
                                          "properties": {"points": _POINTS, "bands": _bands("at_most")}}},
    # the student's validation data, also measured: the ids (patient ids of the dataset's train split)
    # listed under `key` in the exported JSON `file`
    "validation": {"type": "object", "required": ["file", "key"], "additionalProperties": False,
                   "properties": {"file": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}\\.json$"}, "key": _ID}},
    # a written answer whose quoted numbers must match the measured ones (as in the inquiry loop)
    "written": {"type": "object", "required": ["cell", "points"], "additionalProperties": False,
                "properties": {"cell": _CELL, "points": _POINTS, "tolerance": {"type": "number", "minimum": 0}}},
}

PART = {
    "type": "object",
    "required": ["id", "kind"],
    "properties": {"kind": {"enum": list(PART_KINDS)}},
    "allOf": [
        _part("tests", ["cells"], {
            "cells": {"type": "object", "minProperties": 1,
                      "propertyNames": _CELL, "additionalProperties": _POINTS}}),
        _part("metric", ["metric", "points", "bands"], {
            "metric": {"enum": ["accuracy", "macro_f1", "min_recall", "balanced_accuracy"]},
            "points": _POINTS, "bands": _bands("at_least")}),
        _part("timing", ["cell", "points", "bands"], {
            "cell": {"type": "string"}, "points": _POINTS, "bands": _bands("at_most")}),
        _part("reflection", ["cell", "points"], {
            "cell": _CELL, "points": _POINTS,
            # criteria for suggested scores (see autograder/reflection); free-form until validated there
            "reflection": {"type": "object"}}),
        # checked by content in the evaluator: `check` names a function in autograder/grading/checks
        _part("artifact", ["points", "check"], {
            "points": _POINTS, "check": {"type": "string"}, "options": {"type": "object"}}),
        # the one-variable inquiry loop: the points are the checks' (see autograder/inquiry)
        _part("inquiry", ["cell", "inquiry"], {"cell": _CELL, "inquiry": INQUIRY}),
        # per exported precision: accuracy/AUC change against the student's fp32 program, size and CPU
        # latency against the reference's fp32 model on the same runner; points per measure and program
        _part("efficiency", ["points", "programs", "baseline", "measures"], {"points": _POINTS, **EFFICIENCY}),
    ],
}

LIMITS = {
    "type": "object",
    "propertyNames": {"enum": ["tiny", "full"]},
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "notebook_timeout_s": {"type": "number", "exclusiveMinimum": 0},
            "cell_timeout_s": {"type": "number", "exclusiveMinimum": 0},
            "memory_gb": {"type": "number", "exclusiveMinimum": 0},
        },
    },
}

RUBRIC = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["assignment", "title", "version", "parts"],
    "additionalProperties": False,
    "properties": {
        "assignment": _ID,
        "title": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        # the registry name the evaluator loads; needed when a part looks at the exported model
        "dataset": {"type": "string"},
        "parts": {"type": "array", "minItems": 1, "items": PART},
        "limits": LIMITS,
    },
}
