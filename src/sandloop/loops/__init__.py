"""Each kind of loop as plain Python, without Prefect: its spec, and an engine that plans the next
model call, takes its outcome, and says when the loop is done. `sandloop.flows.driver` runs any
of them as Prefect task runs."""
