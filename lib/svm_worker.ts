/**
 * An SVM worker ({@link SVMWorkers} in lib/svm.ts): solves the one-vs-rest problems, and computes rows of Gram
 * matrices where no OpenBLAS is used, that it is asked for. The rows, the Gram matrix, the labels and the weights
 * solved are shared memory.
 *
 * @module
 */
import { serveRequests } from "./compute/pool.ts";
import { runSVMJob, type SVMAnswer, type SVMJob } from "./svm.ts";

serveRequests<SVMJob, SVMAnswer>(runSVMJob);
