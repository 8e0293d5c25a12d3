// One-shot job of the Compose stack (mongosh, as the root user, on the first member): initiate
// the replica set `rs0` of the three members once, then wait until it has a primary. Run again
// (every `compose up`), it only waits: an initiated set is left as it is.
const members = [
  { _id: 0, host: "mongo:27017", priority: 2 },
  { _id: 1, host: "mongo-2:27017", priority: 1 },
  { _id: 2, host: "mongo-3:27017", priority: 1 },
];
try {
  rs.status();
  print("replica set rs0 already initiated");
} catch (error) {
  // NotYetInitialized (94): the first start of the stack.
  if (error.code !== 94) throw error;
  rs.initiate({ _id: "rs0", members: members });
  print("replica set rs0 initiated");
}
for (let i = 0; i < 120; i++) {
  if (db.hello().isWritablePrimary || db.hello().primary) {
    print(`primary: ${db.hello().primary}`);
    quit(0);
  }
  sleep(1000);
}
print("no primary after 120 s");
quit(1);
