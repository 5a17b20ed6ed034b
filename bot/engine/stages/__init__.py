"""The release lifecycle, one object per stage.

A release runs its kind's stages in order (:mod:`bot.engine.stages.pipeline` lists them):

- deploy: admission → backup → smoke test → each traffic step (shift, then bake + gate) →
  the final verify (the gate of the 100% step, over the verify window). The smoke test is
  the lifecycle's ``opening``: it changes the deployment (the new version at 0%), so it runs
  once the release holds its environment, before the first step's shift;
- rollback: admission → pre-flight (the target ran there before and can still be deployed) →
  deploy at 100% → verify (read back);
- restore-db: admission → restore → verify.

Stages before any deployment change (:class:`~bot.engine.stages.base.Preflight`) run while
the release is approved; what they find is stored with the release's start, in one
transaction. A stage is given only the ports it needs.
"""
