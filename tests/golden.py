"""What the learner's notebook printed (shared/seeds/000_2ccef7051caa64cb.txt), verbatim, and its numbers."""

import re

# The two printouts, verbatim.
PRINTOUT = {
    "seed-linear": """\
Epoch 0, Loss: 113.9959
Epoch 100, Loss: 8.4656
Epoch 200, Loss: 8.4656
Epoch 300, Loss: 8.4656
Epoch 400, Loss: 8.4656
Epoch 500, Loss: 8.4656
Epoch 600, Loss: 8.4656
Epoch 700, Loss: 8.4656
Epoch 800, Loss: 8.4656
Epoch 900, Loss: 8.4656

Final Weights:
W1: [[1.59530964]]
W2: [[1.59530964]]

Prediction:
 [[ 0.        ]
 [ 2.54501285]
 [ 5.09002571]
 [ 7.63503856]
 [10.18005141]
 [12.72506427]
 [15.27007712]
 [17.81508997]
 [20.36010282]
 [22.90511568]]

y True:
 [[ 0]
 [ 2]
 [ 4]
 [ 6]
 [ 8]
 [10]
 [12]
 [14]
 [16]
 [18]]
""",
    "seed-affine": """\
Epoch 0, Loss: 162.8282
Epoch 100, Loss: 10.3533
Epoch 200, Loss: 7.2105
Epoch 300, Loss: 5.1797
Epoch 400, Loss: 3.7506
Epoch 500, Loss: 2.7163
Epoch 600, Loss: 1.9633
Epoch 700, Loss: 1.4154
Epoch 800, Loss: 1.0179
Epoch 900, Loss: 0.7302

Final Params:
W1: [[1.54516413]] | b1: -1.2619867906488234
W2: [[1.38274399]] | b2: 4.737832771104995

Prediction:
 [[ 2.99282812]
 [ 5.12939453]
 [ 7.26596094]
 [ 9.40252735]
 [11.53909375]
 [13.67566016]
 [15.81222657]
 [17.94879298]
 [20.08535939]
 [22.22192579]]

y True:
 [[ 3]
 [ 5]
 [ 7]
 [ 9]
 [11]
 [13]
 [15]
 [17]
 [19]
 [21]]
""",
}


def numbers(printout: str) -> dict:
    """The printed numbers as strings, exactly as shown: losses, W1, b1, ..., prediction."""
    head, prediction = printout.split("Prediction:")
    prediction = prediction.split("y True:")[0]
    found = {"losses": re.findall(r"Loss: (\S+)", head)}
    found.update(re.findall(r"\b([Wb]\d): \[*([-\d.]+)", head))
    found["prediction"] = re.findall(r"([-\d.]+)\s*\]", prediction)
    return found


GOLDEN = {name: numbers(text) for name, text in PRINTOUT.items()}
