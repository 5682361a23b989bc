/* The notebook's 1-1-1 network trained by a plain C loop: the floor that no framework
 * can beat, for the reference benchmarks. o = w2 (w1 x + b1) + b2, MSE, gradient descent.
 * p holds w1, b1, w2, b2 and is updated in place; biases stay put when bias is 0. */
void train(const double *x, const double *y, int n, int epochs, double lr, int bias,
           double *p, double *losses)
{
    double w1 = p[0], b1 = p[1], w2 = p[2], b2 = p[3];
    for (int epoch = 0; epoch < epochs; epoch++) {
        double loss = 0, gw1 = 0, gb1 = 0, gw2 = 0, gb2 = 0;
        for (int i = 0; i < n; i++) {
            double h = w1 * x[i] + b1, o = w2 * h + b2, e = o - y[i];
            double d = 2 * e / n;          /* dL/do */
            loss += e * e;
            gw2 += d * h;                  /* dL/dw2 = dL/do h */
            gb2 += d;                      /* dL/db2 = dL/do */
            gw1 += d * w2 * x[i];          /* dL/dw1 = dL/do w2 x */
            gb1 += d * w2;                 /* dL/db1 = dL/do w2 */
        }
        losses[epoch] = loss / n;
        w1 -= lr * gw1;
        w2 -= lr * gw2;
        if (bias) {
            b1 -= lr * gb1;
            b2 -= lr * gb2;
        }
    }
    p[0] = w1; p[1] = b1; p[2] = w2; p[3] = b2;
}
