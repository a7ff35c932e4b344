"""The demo-data generator: a deterministic, realistic CRM world with planted signals and ground truth.

`crm generate` calls `pipelines.generate.run.generate_home`. The modules simulate one part of the
business each (organisation, catalogue, marketing, customers and churn, sales, finance, service,
interactions), `faults` corrupts landing rows on purpose and `writers` puts everything on disk.
"""
