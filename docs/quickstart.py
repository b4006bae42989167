from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import spinnconv

digits = load_digits()  # 1797 images of 8×8, values 0..16
X_train, X_test, y_train, y_test = train_test_split(
    digits.images, digits.target, test_size=0.2, stratify=digits.target, random_state=0)

net = spinnconv.STDPConvNet(backend="brian2", seed=0)  # default architecture for 8×8
net.fit(X_train, y_train)  # STDP on conv layer 1, then the linear SVM
net.summary()
print(f"test accuracy: {net.score(X_test, y_test):.4f}")
net.save("model-digits")  # main.py --mode testing --model-dir model-digits reads it
