"""Developer and test tools that are not the CSMS: the process harness, the RAUC sandbox and the
demos (``make demo``, ``make demo-ota``). Never installed on a charger (DESIGN.md: device package
vs tools).
"""
