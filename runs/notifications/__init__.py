"""Telling people when a run ends: email, Slack and signed webhooks, sent by the worker.

- models: destinations, admins' rules, "notify me" subscriptions, the delivery log;
- events: `outcome_changed(run, previous)`, the one hook the service and the sweep call
  where a run's outcome changes; it writes the deliveries (the outbox);
- messages: what each kind of destination receives;
- transports: sending (email through Django, Slack and webhooks over https);
- delivery: the django-tasks task that claims, sends and retries one delivery.
"""
