"""Classification: encoder + linear head, trained end to end; scored by accuracy."""
from pipeline.tasks.kinds import TaskSpec

SPEC = TaskSpec(head="classification", metric="accuracy", data="classification")
