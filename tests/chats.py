"""The three chats every engine's greedy token ids are checked on against the reference engine's (the fault
diagnosis, the triage and the one-line answer), STEPS tokens each; tests/js/cpu-engine.test.js has the same three."""

CHATS = [
    [{"role": "user", "content": "The cooling water pump on our generator is vibrating and the bearing is hot. "
                                 "What should I check, step by step?"}],
    [{"role": "system", "content": "You are a triage assistant in a rural clinic."},
     {"role": "user", "content": "A 4-year-old has had fever for three days and is breathing fast. "
                                 "What are the danger signs I should look for?"}],
    [{"role": "user", "content": "What is the capital of France?"}],
]
STEPS = 24
