// Runs once, when the data volume is empty (the image's /docker-entrypoint-initdb.d): the orchestrator's own user,
// readWrite on its database only. The root user (MONGO_INITDB_ROOT_*) stays for administration.
const database = process.env.APP_DATABASE;
db.getSiblingDB(database).createUser({
  user: process.env.APP_USERNAME,
  pwd: process.env.APP_PASSWORD,
  roles: [{ role: "readWrite", db: database }],
});
