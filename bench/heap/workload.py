# A python3 workload for bench/heap: builds and discards many small objects (dicts, lists,
# strings), which CPython allocates through pymalloc and, above 512 bytes, through malloc.
import json
total = 0
for i in range(30000):
    doc = {"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 17)] * (i % 40), "blob": "x" * (i % 3000)}
    total += len(json.dumps(doc))
print(total)
