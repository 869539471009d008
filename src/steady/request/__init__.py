"""The request part (torch-free): check a request against its model and this machine, and plan
its memory. `check` (steady.request.check), `plan` (steady.request.plan), the planner's ladder
(steady.request.planner), the machine probe (steady.request.machine) and device choice
(steady.request.devices)."""
