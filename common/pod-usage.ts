/** Pod and container usage against requests and limits (metrics.k8s.io), as activities report it and checklists read it. */
export interface ResourceFigures {
  /** CPU in millicores, memory in bytes. */
  usage: number;
  request?: number;
  limit?: number;
  /** usage / request and usage / limit in percent (rounded to 0.1). */
  percentOfRequest?: number;
  percentOfLimit?: number;
}

export interface ContainerUsage {
  name: string;
  cpuMillicores: ResourceFigures;
  memoryBytes: ResourceFigures;
}

export interface PodUsage {
  name: string;
  containers: ContainerUsage[];
  cpuMillicores: number;
  memoryBytes: number;
}
