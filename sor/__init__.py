"""sor, the Serverless Open Runtime: one declarative runtime for any language on AWS Lambda."""

from __future__ import annotations

__version__ = "0.1.0"
