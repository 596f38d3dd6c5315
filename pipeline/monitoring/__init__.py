"""Live monitoring over the prediction audit log (`python -m pipeline.monitor`): `logframe`
(the verified log as predictions with outcomes), `live` (one window judged like the test
split: fairness, performance, gates, drift limits, verdict), `drift` (PSI and KS against the
training data), `render` (the HTML report)."""
