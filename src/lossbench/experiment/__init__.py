"""The experiment around the library: config schema and checks, run identity, MLflow tracking, sweeps,
resume, multi-device launch, the stages of one run, and the comparison of finished runs.

Importing this package is cheap: ``pipeline.run`` registers the schema before Hydra composes."""
