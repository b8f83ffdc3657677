"""General-instruction pairs (arithmetic, definitions, conversions, lists, how-tos, capitals) for replay and eval.

Replayed during fine-tuning against forgetting, and held out (disjoint prompts and
topics) as the capability-regression slice. Answers are short and checkable.
"""

from __future__ import annotations

import random

DEFINITIONS = {
    "latency": "the time between a request being sent and its response arriving",
    "bandwidth": "the amount of data a connection can carry per second",
    "inflation": "a general rise in prices that lowers what money can buy",
    "photosynthesis": "the process by which plants turn light, water and carbon dioxide into sugar and oxygen",
    "a prime number": "a whole number greater than one whose only divisors are one and itself",
    "an invoice": "a document asking a customer to pay for goods or services supplied",
    "encryption": "turning readable data into a coded form that only holders of the key can read",
    "a firewall": "a system that filters network traffic according to security rules",
    "a budget": "a plan for how much money will be earned and spent over a period",
    "gravity": "the force that pulls objects with mass towards each other",
    "a synonym": "a word that means the same or nearly the same as another word",
    "an antonym": "a word with the opposite meaning of another word",
    "a metaphor": "a figure of speech that describes something as if it were something else",
    "evaporation": "the change of a liquid into a gas, usually by heating",
    "a mortgage": "a loan used to buy property, secured against that property",
    "interest": "the price paid for borrowing money, usually a percentage of the amount",
    "a database": "an organised collection of data that can be searched and updated",
    "an algorithm": "a finite list of steps that solves a problem or performs a task",
    "a backup": "a copy of data kept so it can be restored if the original is lost",
    "a password manager": "an application that stores and fills in passwords securely",
    "a spreadsheet": "a grid of rows and columns used to organise and calculate data",
    "biodiversity": "the variety of living species in a place or on the whole planet",
    "a democracy": "a system of government in which citizens choose their leaders by voting",
    "a noun": "a word that names a person, place, thing or idea",
    "a verb": "a word that describes an action, state or occurrence",
    "a refund": "money returned to a customer, for example for a faulty product",
    "a subscription": "an arrangement to pay regularly for continued access to a product or service",
    "a router": "a device that forwards data packets between networks",
    "a vaccine": "a preparation that trains the immune system to recognise a disease",
    "erosion": "the gradual wearing away of rock or soil by wind, water or ice",
    "a haiku": "a short poem of three lines with five, seven and five syllables",
    "a deadline": "the latest time by which something must be finished",
    "an ecosystem": "a community of living things interacting with their environment",
    "a molecule": "the smallest unit of a substance made of atoms bonded together",
    "a currency": "a system of money used in a particular country or region",
    "a thermostat": "a device that keeps a temperature close to a chosen setting",
    "a recipe": "a set of instructions for preparing a dish",
    "a warranty": "a written promise to repair or replace a product if it fails",
    "compound interest": "interest calculated on the original sum plus interest already added",
    "a hypothesis": "a proposed explanation that can be tested by experiment",
}
HOWTOS = {
    "boil an egg": ["Place the egg in a pan of cold water.", "Bring the water to the boil.",
                    "Simmer for seven to nine minutes.", "Cool the egg in cold water before peeling."],
    "make a cup of tea": ["Boil fresh water.", "Put a tea bag in a cup.", "Pour the water over it.",
                          "Steep for three to five minutes, then remove the bag."],
    "change a flat tyre": ["Park on flat ground and apply the handbrake.", "Loosen the wheel nuts slightly.",
                           "Jack up the car and remove the wheel.",
                           "Fit the spare and tighten the nuts in a star pattern."],
    "write a cover letter": ["Address the hiring manager by name.", "Say which role you are applying for.",
                             "Give two or three examples that match the job.", "Close with a polite call to action."],
    "back up a phone": ["Connect to Wi-Fi and a charger.", "Open the backup settings.",
                        "Turn on automatic backup.", "Start a backup now and wait for it to finish."],
    "plant a tree": ["Dig a hole twice as wide as the root ball.", "Loosen the roots gently.",
                     "Set the tree at the same depth it grew before.", "Fill, firm the soil and water well."],
    "create a strong password": ["Use at least twelve characters.", "Combine several unrelated words.",
                                 "Avoid personal details such as birthdays.", "Store it in a password manager."],
    "clean a laptop keyboard": ["Turn the laptop off.", "Turn it upside down and tap gently.",
                                "Use compressed air between the keys.", "Wipe the keys with a slightly damp cloth."],
    "prepare for a job interview": ["Research the company.", "Practise answers to common questions.",
                                    "Prepare questions to ask.", "Plan your route and arrive early."],
    "save money on groceries": ["Plan meals for the week.", "Write a shopping list and stick to it.",
                                "Compare unit prices.", "Buy staples in bulk."],
    "reset a home router": ["Find the small reset button.", "Hold it for ten seconds with a paper clip.",
                            "Wait for the lights to settle.", "Set up the network again with the app."],
    "write a meeting agenda": ["State the goal of the meeting.", "List the topics in order.",
                               "Give each topic a time limit.", "Send it to attendees a day ahead."],
    "start running": ["Get comfortable shoes.", "Begin with run-walk intervals.", "Run three times a week.",
                      "Increase distance by no more than ten percent a week."],
    "make a budget": ["Add up your monthly income.", "List fixed costs.", "Set limits for variable spending.",
                      "Review the numbers at the end of each month."],
    "take a screenshot on Windows": ["Press Windows, Shift and S together.", "Drag to select the area.",
                                     "Click the notification to edit it.", "Save the image."],
    "descale a kettle": ["Fill the kettle halfway with equal parts water and vinegar.", "Boil it.",
                         "Leave it for an hour.", "Rinse and boil clean water twice."],
    "write a thank-you note": ["Greet the person by name.", "Name the gift or favour.",
                               "Say how you will use it or what it meant.", "Close warmly."],
    "organise a desk": ["Clear everything off.", "Keep only what you use daily on the surface.",
                        "Group the rest into drawers.", "Take five minutes each evening to tidy."],
    "learn new vocabulary": ["Read a little every day.", "Write new words in a notebook.",
                             "Use each new word in a sentence.", "Review the words with spaced repetition."],
    "store fresh herbs": ["Trim the stems.", "Stand them in a glass of water.", "Cover loosely with a bag.",
                          "Keep them in the fridge, except basil."],
    "give constructive feedback": ["Pick a private moment.", "Describe the specific behaviour.",
                                   "Explain its effect.", "Agree on a next step together."],
    "pack a suitcase": ["Lay out everything first.", "Roll clothes to save space.",
                        "Put heavy items near the wheels.", "Keep liquids in a sealed bag."],
    "fix a slow computer": ["Restart it.", "Close programs you are not using.", "Remove startup apps.",
                            "Free up disk space and install updates."],
    "brew coffee with a French press": ["Add coarse coffee to the press.", "Pour in hot water.",
                                        "Wait four minutes.", "Press the plunger slowly and serve."],
}
CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasilia",
    "Kenya": "Nairobi", "Germany": "Berlin", "India": "New Delhi", "Mexico": "Mexico City", "Egypt": "Cairo",
    "Norway": "Oslo", "Argentina": "Buenos Aires", "Spain": "Madrid", "Italy": "Rome", "Turkey": "Ankara",
    "Poland": "Warsaw", "Vietnam": "Hanoi", "Peru": "Lima", "Ghana": "Accra", "Sweden": "Stockholm",
    "Portugal": "Lisbon", "Ireland": "Dublin", "Chile": "Santiago", "Thailand": "Bangkok", "Greece": "Athens",
    "Morocco": "Rabat", "Austria": "Vienna", "Finland": "Helsinki", "New Zealand": "Wellington", "Nigeria": "Abuja",
}
# (from unit, to unit, factor) or offset conversions handled by name
CONVERSIONS = [("kilometres", "miles", 0.621371), ("miles", "kilometres", 1.609344), ("kilograms", "pounds", 2.204623),
               ("pounds", "kilograms", 0.453592), ("litres", "US gallons", 0.264172), ("inches", "centimetres", 2.54),
               ("metres", "feet", 3.28084), ("hours", "minutes", 60), ("gigabytes", "megabytes", 1000),
               ("Celsius", "Fahrenheit", None), ("Fahrenheit", "Celsius", None)]
ITEMS = {
    "fruits": ["apples", "pears", "plums", "cherries", "mangoes", "kiwis", "grapes", "lemons", "figs"],
    "cities": ["Lisbon", "Osaka", "Denver", "Nairobi", "Krakow", "Quito", "Perth", "Leeds", "Seville"],
    "tools": ["hammer", "wrench", "pliers", "saw", "drill", "chisel", "level", "tape measure", "screwdriver"],
    "animals": ["otter", "heron", "badger", "lynx", "gecko", "walrus", "falcon", "bison", "koala"],
    "colours": ["teal", "amber", "crimson", "ivory", "olive", "indigo", "coral", "slate", "mustard"],
}


def _num(x: float) -> str:
    r = round(x, 2)
    return str(int(r)) if r == int(r) else f"{r:.2f}".rstrip("0")


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 999), rng.randint(2, 99)
    op = rng.choice(["+", "-", "x", "/"])
    if op == "+":
        q = rng.choice(["What is {a} plus {b}?", "Add {a} and {b}.", "Calculate {a} + {b}."])
        return q.format(a=a, b=b), f"{a} + {b} = {a + b}."
    if op == "-":
        q = rng.choice(["What is {a} minus {b}?", "Subtract {b} from {a}.", "Calculate {a} - {b}."])
        return q.format(a=a, b=b), f"{a} - {b} = {a - b}."
    if op == "x":
        q = rng.choice(["What is {a} times {b}?", "Multiply {a} by {b}.", "Calculate {a} x {b}."])
        return q.format(a=a, b=b), f"{a} x {b} = {a * b}."
    a = b * rng.randint(2, 60)
    q = rng.choice(["What is {a} divided by {b}?", "Divide {a} by {b}.", "Calculate {a} / {b}."])
    return q.format(a=a, b=b), f"{a} / {b} = {a // b}."


def _percentage(rng: random.Random) -> tuple[str, str]:
    p, x = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 50, 75]), rng.randint(2, 90) * 10
    return f"What is {p}% of {x}?", f"{p}% of {x} is {_num(p * x / 100)}."


def _conversion(rng: random.Random) -> tuple[str, str]:
    src, dst, factor = rng.choice(CONVERSIONS)
    v = rng.randint(1, 200)
    if factor is None:
        out = v * 9 / 5 + 32 if src == "Celsius" else (v - 32) * 5 / 9
        return f"Convert {v} degrees {src} to {dst}.", f"{v} degrees {src} is {_num(out)} degrees {dst}."
    q = rng.choice(["Convert {v} {s} to {d}.", "How many {d} are in {v} {s}?"])
    return q.format(v=v, s=src, d=dst), f"{v} {src} is {_num(v * factor)} {dst}."


def _listing(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(sorted(ITEMS))
    items = rng.sample(ITEMS[kind], rng.randint(3, 6))
    joined = ", ".join(items)
    style = rng.choice(["numbered", "bulleted", "sorted", "count"])
    if style == "numbered":
        return f"Format these {kind} as a numbered list: {joined}", "\n".join(
            f"{i}. {x}" for i, x in enumerate(items, 1))
    if style == "bulleted":
        return f"Turn this into a bulleted list: {joined}", "\n".join(f"- {x}" for x in items)
    if style == "sorted":
        return f"Sort these {kind} alphabetically: {joined}", ", ".join(sorted(items, key=str.lower))
    return f"How many items are in this list: {joined}?", f"There are {len(items)} items."


def _definition(rng: random.Random, term: str) -> tuple[str, str]:
    q = rng.choice(["What is {t}?", "Define {t}.", "Explain in one sentence what {t} is."])
    return q.format(t=term), f"{term[:1].upper()}{term[1:]} is {DEFINITIONS[term]}."


def _howto(rng: random.Random, topic: str) -> tuple[str, str]:
    q = rng.choice(["How do I {t}?", "Give me short steps to {t}.", "What are the steps to {t}?"])
    return q.format(t=topic), "\n".join(f"{i}. {s}" for i, s in enumerate(HOWTOS[topic], 1))


def _capital(rng: random.Random, country: str) -> tuple[str, str]:
    q = rng.choice(["What is the capital of {c}?", "Name the capital city of {c}."])
    return q.format(c=country), f"The capital of {country} is {CAPITALS[country]}."


def general_sets(rng: random.Random, n_train: int = 200, n_eval: int = 60) -> tuple[list[dict], list[dict]]:
    """(train, eval) general pairs; eval prompts and topics never appear in train."""
    topics = {name: sorted(table) for name, table in
              (("definition", DEFINITIONS), ("howto", HOWTOS), ("capital", CAPITALS))}
    held = {}
    for name, keys in topics.items():
        rng.shuffle(keys)
        cut = len(keys) // 4
        held[name] = (keys[cut:], keys[:cut])  # (train topics, eval topics)
    makers = {"definition": _definition, "howto": _howto, "capital": _capital}
    seen: set[str] = set()
    sets: list[list[dict]] = [[], []]
    for part, total in ((0, n_train), (1, n_eval)):
        rows = sets[part]
        for name in topics:  # every topic of its side, once
            for key in held[name][part]:
                prompt, answer = makers[name](rng, key)
                seen.add(prompt)
                rows.append({"prompt": prompt, "response": answer, "task": name})
        procedural = [("arithmetic", _arithmetic), ("percentage", _percentage), ("conversion", _conversion),
                      ("list", _listing)]
        while len(rows) < total:
            name, fn = rng.choice(procedural)
            prompt, answer = fn(rng)
            if prompt not in seen:
                seen.add(prompt)
                rows.append({"prompt": prompt, "response": answer, "task": name})
        rng.shuffle(rows)
    train = [{"id": f"g-{i + 1:04d}", **r} for i, r in enumerate(sets[0])]
    evals = [{"id": f"ge-{i + 1:04d}", "prompt": r["prompt"], "reference": r["response"], "task": r["task"]}
             for i, r in enumerate(sets[1])]
    return train, evals
