internal import CSprof

func _shimCheck() -> Int32 { var a = perf_event_attr(); return csprof_perf_event_open(&a, 0, -1, -1, 0) }
