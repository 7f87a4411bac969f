/**
 * The off-site copy of the backups (`apphost:backups.s3`): an S3 bucket the
 * program creates, and the IAM role the EC2 instance uploads with, so the host
 * holds no AWS key. Only for an ec2 host; the config refuses it otherwise.
 *
 * The bucket: versioned, SSE-S3 by default, all public access blocked, ACLs
 * off (BucketOwnerEnforced), TLS-only by policy, and a lifecycle rule that
 * expires copies after `apphost:backups.s3ExpireDays`. The role may only put
 * objects under `<app>/<stack>/`: no read, no list, no delete, so a
 * compromised host cannot erase the copies (an overwrite keeps the old version).
 */
// Type-only at the top: the SDK is loaded where it is used, so stacks without a backup bucket start faster.
import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { BackupsConfig, HostConfig } from "./config/types";
import { resourceTags, type StackIdentity } from "./host";
import { computed } from "./computed";
import { hostLayout } from "./paths";
import type { S3Target } from "./release/backup";

export type { S3Target };

/** Days before an upload that never completed is aborted (its parts cost money and show nowhere). */
export const ABORT_INCOMPLETE_UPLOAD_DAYS = 7;

/** `<app>/<stack>/`: the key prefix of a stack's copies, and the only place its role may write. */
export function backupPrefix(identity: Pick<StackIdentity, "app" | "stack">): string {
  return `${identity.app}/${identity.stack}/`;
}

type PolicyDocument = {
  Version: "2012-10-17";
  Statement: Array<Record<string, unknown>>;
};

/** Bucket policy: refuse every request that does not come over TLS, whoever makes it. */
export function tlsOnlyPolicy(bucketArn: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [bucketArn, `${bucketArn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  };
}

/** The instance role's only permission: put objects under the stack's prefix. */
export function uploadPolicy(bucketArn: string, prefix: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "PutBackups",
        Effect: "Allow",
        Action: ["s3:PutObject"],
        Resource: [`${bucketArn}/${prefix}*`],
      },
    ],
  };
}

/** Who may assume the instance role: EC2, for this account's instances. */
export function ec2AssumeRolePolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Principal: { Service: "ec2.amazonaws.com" },
        Action: "sts:AssumeRole",
      },
    ],
  };
}

export interface BackupBucketArgs {
  /**
   * Whose backups (`stackIdentity(config)`): `<app>-<stack>` names the bucket
   * and the role's IAM path, `<app>/<stack>/` is the prefix the role may write
   * to, and every resource is tagged with it.
   */
  identity: StackIdentity;
  /** apphost:backups: `s3` must be on; `s3ExpireDays` is how long a copy (and an overwritten version) is kept */
  backups: Pick<BackupsConfig, "s3" | "s3ExpireDays">;
  /** apphost:host.kind: only an ec2 instance can write to the bucket (with the instance role) */
  hostKind: HostConfig["kind"];
}

export class BackupBucket extends pulumi.ComponentResource {
  /** The bucket's name (a stack output). */
  readonly bucketName: pulumi.Output<string>;
  /** What the host's backup script copies to. */
  readonly target: pulumi.Output<S3Target>;
  /** The instance profile for `Host`'s instance. */
  readonly instanceProfileName: pulumi.Output<string>;
  readonly nodes: {
    bucket: aws.s3.Bucket;
    publicAccessBlock: aws.s3.BucketPublicAccessBlock;
    ownershipControls: aws.s3.BucketOwnershipControls;
    versioning: aws.s3.BucketVersioning;
    encryption: aws.s3.BucketServerSideEncryptionConfiguration;
    lifecycle: aws.s3.BucketLifecycleConfiguration;
    bucketPolicy: aws.s3.BucketPolicy;
    role: aws.iam.Role;
    rolePolicy: aws.iam.RolePolicy;
    instanceProfile: aws.iam.InstanceProfile;
  };

  /** The stack's backup bucket, or undefined when `apphost:backups.s3` is off. */
  static forStack(name: string, args: BackupBucketArgs): BackupBucket | undefined {
    return args.backups.s3 ? new BackupBucket(name, args) : undefined;
  }

  constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    const aws = require("@pulumi/aws") as typeof import("@pulumi/aws");
    super("apphost:index:BackupBucket", name, {}, opts);
    const { identity } = args;
    if (!args.backups.s3 || args.hostKind !== "ec2") {
      // The config refuses this; a direct caller must not get a bucket no host can write to.
      throw new Error("BackupBucket: needs apphost:backups.s3 true and apphost:host.kind ec2");
    }
    const parent = { parent: this };
    const tags = resourceTags(identity);
    const prefix = backupPrefix(identity);
    const days = args.backups.s3ExpireDays;
    const id = hostLayout(identity.app, identity.stack).id;
    const iamPath = `/apphost/${id}/`;

    const bucket = new aws.s3.Bucket(
      `${name}-bucket`,
      {
        // `<app>-<stack>-` plus a random suffix: at most 32 + 26 characters, lowercase.
        bucketPrefix: `${id}-`,
        // A destroy must not silently delete the only off-site copies: it fails while objects remain.
        forceDestroy: false,
        tags,
      },
      parent,
    );
    const publicAccessBlock = new aws.s3.BucketPublicAccessBlock(
      `${name}-public-access-block`,
      {
        bucket: bucket.id,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      parent,
    );
    const ownershipControls = new aws.s3.BucketOwnershipControls(
      `${name}-ownership`,
      { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } },
      parent,
    );
    const versioning = new aws.s3.BucketVersioning(
      `${name}-versioning`,
      { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } },
      parent,
    );
    const encryption = new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      {
        bucket: bucket.id,
        // SSE-S3: no KMS key to manage, and the instance role needs no KMS permission.
        rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
      },
      parent,
    );
    const lifecycle = new aws.s3.BucketLifecycleConfiguration(
      `${name}-lifecycle`,
      {
        bucket: bucket.id,
        rules: [
          {
            id: "expire-backups",
            status: "Enabled",
            filter: {},
            expiration: { days },
            noncurrentVersionExpiration: { noncurrentDays: days },
            abortIncompleteMultipartUpload: { daysAfterInitiation: ABORT_INCOMPLETE_UPLOAD_DAYS },
          },
        ],
      },
      // Noncurrent-version rules act on a versioned bucket.
      { ...parent, dependsOn: [versioning] },
    );
    const bucketPolicy = new aws.s3.BucketPolicy(
      `${name}-policy`,
      { bucket: bucket.id, policy: bucket.arn.apply((arn) => JSON.stringify(tlsOnlyPolicy(arn))) },
      // S3 refuses concurrent changes to a bucket's policy and its public access block.
      { ...parent, dependsOn: [publicAccessBlock] },
    );

    const role = new aws.iam.Role(
      `${name}-role`,
      {
        description: `apphost ${identity.project}/${identity.stack}: the instance copies backups to S3`,
        // A path per stack, so the deploy role's IAM rights can be scoped to it (docs/ci.md).
        path: iamPath,
        assumeRolePolicy: JSON.stringify(ec2AssumeRolePolicy()),
        tags,
      },
      parent,
    );
    const rolePolicy = new aws.iam.RolePolicy(
      `${name}-put-backups`,
      { role: role.id, policy: bucket.arn.apply((arn) => JSON.stringify(uploadPolicy(arn, prefix))) },
      parent,
    );
    const instanceProfile = new aws.iam.InstanceProfile(
      `${name}-instance-profile`,
      { role: role.name, path: iamPath, tags },
      parent,
    );

    this.nodes = {
      bucket,
      publicAccessBlock,
      ownershipControls,
      versioning,
      encryption,
      lifecycle,
      bucketPolicy,
      role,
      rolePolicy,
      instanceProfile,
    };
    this.bucketName = bucket.bucket;
    // The host copies only once the bucket is fully set up and the role may write to it.
    const ready = Object.values(this.nodes).map((r) => r.id);
    this.target = pulumi
      .all([computed(bucket.bucket), computed(bucket.region), ...ready])
      .apply(([b, region]): S3Target => ({ bucket: b, region, prefix }));
    this.instanceProfileName = instanceProfile.name;
    this.registerOutputs({ bucketName: this.bucketName, instanceProfileName: this.instanceProfileName });
  }
}
