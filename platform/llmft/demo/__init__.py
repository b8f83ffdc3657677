"""The demo: seeded sample data (tickets, a general set, a dedupe corpus, random LoRA adapters) and
the end-to-end pipeline that runs the whole lifecycle on the tiny model (`python -m llmft.demo`).

It sits on the top floor, beside `jobs`, `control` and `cli`: it drives the stages and nothing in
the core imports it. Importing this package is cheap; the pipeline lives in `llmft.demo.pipeline`.
"""
